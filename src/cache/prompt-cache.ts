import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/** Hit/miss counters of the prompt cache, by kind of hit. */
export interface PromptCacheCounters {
  exactHits: number;
  prefixHits: number;
  prefixRejected: number;
  misses: number;
}

/** A templated conversation and its ids, kept so that the next turn can reuse them. */
export interface CachedConversation {
  text: string;
  ids: number[];
}

/** A stable hash of any JSON value (keys as given: the client's exact input). */
export function hashOf(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/**
 * Prompt construction cache (bounded LRUs): the exact input (model + text, ids or messages) →
 * prompt ids; and each chat conversation (model + messages) → its templated text and ids, so a
 * follow-up turn that extends it only tokenizes the new suffix.
 */
export class PromptCache {
  readonly counters: PromptCacheCounters = { exactHits: 0, prefixHits: 0, prefixRejected: 0, misses: 0 };
  private readonly exact: LRUCache<string, number[]>;
  private readonly conversations: LRUCache<string, CachedConversation>;

  constructor(maxEntries: number) {
    this.exact = new LRUCache({ max: maxEntries });
    this.conversations = new LRUCache({ max: maxEntries });
  }

  /** Ids built before for exactly this input. */
  getExact(key: string): number[] | undefined {
    const ids = this.exact.get(key);
    if (ids !== undefined) this.counters.exactHits += 1;
    return ids;
  }

  setExact(key: string, ids: number[]): void {
    this.exact.set(key, ids);
  }

  /** The longest cached conversation that `messages` extends (a strict prefix of it), if any. */
  longestConversation(model: string, messages: readonly unknown[]): CachedConversation | undefined {
    for (let n = messages.length - 1; n >= 1; n--) {
      const hit = this.conversations.get(hashOf(model, messages.slice(0, n)));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  rememberConversation(model: string, messages: readonly unknown[], entry: CachedConversation): void {
    this.conversations.set(hashOf(model, messages), entry);
  }

  /** Entries held, for the bound tests. */
  get size(): { exact: number; conversations: number } {
    return { exact: this.exact.size, conversations: this.conversations.size };
  }
}
