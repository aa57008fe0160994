import { LRUCache } from 'lru-cache';
import type { GeneratedToken } from '../speculative/types.js';

/** Looks up the text of a token the servers did not describe in-band. */
export type TokenTextLookup = (ids: readonly number[], signal: AbortSignal) => Promise<string>;

/** Hit/miss counters of a cache. */
export interface CacheCounters {
  hits: number;
  misses: number;
}

/**
 * Token id → bytes, learned from every llama.cpp response (each generated token and each top-N
 * alternative carries its exact bytes) and, for servers that do not send bytes (vLLM), looked up
 * once by detokenizing the token after an anchor token and taking the difference, so the leading
 * space a tokenizer drops at the start of a text is kept. Bounded by an LRU.
 */
export class TokenBytesCache {
  readonly counters: CacheCounters = { hits: 0, misses: 0 };
  private readonly cache: LRUCache<number, Uint8Array>;
  private readonly encoder = new TextEncoder();

  constructor(
    maxEntries = 262_144,
    private readonly onLookup?: (hit: boolean) => void,
  ) {
    this.cache = new LRUCache({ max: maxEntries });
  }

  /** Learns the bytes of a token and of its top alternatives. */
  observe(token: GeneratedToken): void {
    if (token.bytes !== undefined) this.cache.set(token.id, token.bytes);
    for (const alt of token.top ?? []) if (alt.bytes !== undefined) this.cache.set(alt.id, alt.bytes);
  }

  /** The bytes of `token`, looked up through `lookup` when nobody told them yet. */
  async bytesOf(
    token: GeneratedToken,
    anchorId: number | undefined,
    lookup: TokenTextLookup,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    if (token.bytes !== undefined) return token.bytes;
    const known = this.cache.get(token.id);
    if (known !== undefined) {
      this.counters.hits += 1;
      this.onLookup?.(true);
      return known;
    }
    this.counters.misses += 1;
    this.onLookup?.(false);
    const text =
      anchorId === undefined
        ? await lookup([token.id], signal)
        : (await lookup([anchorId, token.id], signal)).slice((await lookup([anchorId], signal)).length);
    const bytes = this.encoder.encode(text);
    this.cache.set(token.id, bytes);
    return bytes;
  }

  /** Entries held (bounded by the configured maximum). */
  get size(): number {
    return this.cache.size;
  }
}
