import { TokenBytesCache } from '../cache/token-bytes-cache.js';

/** How an engine turns tokens into text. */
export interface Detokenizer {
  tokenize(text: string, addSpecial: boolean): Promise<number[]>;
  detokenize(ids: readonly number[]): Promise<string>;
}

const NO_ABORT = new AbortController().signal;

/**
 * Token id → the exact bytes it adds to a text, for the link: the edge's TokenBytesCache (the
 * token detokenized after an anchor, so a dropped leading space is kept) over the engine's own
 * detokenizer, with an ordinary token as the anchor.
 */
export class TokenBytes {
  private readonly cache = new TokenBytesCache();
  private anchor: Promise<number | undefined> | undefined;

  constructor(private readonly engine: Detokenizer) {}

  /** Bytes told in band by a server (llama-server sends them with every token). */
  learn(id: number, bytes: Uint8Array): void {
    this.cache.observe({ id, bytes });
  }

  async of(id: number): Promise<Uint8Array> {
    this.anchor ??= this.engine.tokenize('a', false).then((ids) => ids.at(-1));
    return this.cache.bytesOf({ id }, await this.anchor, (ids) => this.engine.detokenize(ids), NO_ABORT);
  }
}
