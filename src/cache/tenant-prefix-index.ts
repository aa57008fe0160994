import { LRUCache } from 'lru-cache';

/** Tokens per block: prefixes are recorded and compared at block boundaries. */
export const PREFIX_BLOCK_TOKENS = 16;

/**
 * Which tenants had a server compute which prefixes, so that a server with no notion of tenants
 * (llama-server: its slots and its RAM prompt cache hand any request the longest prefix they
 * hold, whoever computed it) reuses for a tenant only what it could have reused of its own.
 *
 * Prefixes are keyed by a 64-bit hash of their tokens at every block boundary. A request may reuse
 * the server's cache when no other tenant computed a longer prefix of it than the tenant itself:
 * whatever the server then reuses, the tenant's time to first token tells it nothing it did not
 * compute itself (up to one block). Bounded by an LRU of blocks; a block evicted here while the
 * server still holds it errs towards sharing, so the bound is set far above a server's cache.
 */
export class TenantPrefixIndex {
  private readonly owners: LRUCache<string, string | Set<string>>;
  private firstTenant: string | undefined;
  private manyTenants = false;

  constructor(
    maxBlocks = 262_144,
    private readonly blockTokens = PREFIX_BLOCK_TOKENS,
  ) {
    this.owners = new LRUCache({ max: Math.max(1, maxBlocks) });
  }

  /** Whether `tenant` may reuse the server's cache for a context of `tokens`. */
  mayReuse(tenant: string, tokens: readonly number[]): boolean {
    // Every round of a single-tenant deployment asks: no other owner can be found, skip the walk.
    if (!this.seenOtherThan(tenant)) return true;
    let own = 0;
    let other = 0;
    this.forEachBlock(tokens, (key, blocks) => {
      const o = this.owners.get(key);
      if (o === undefined) return false;
      if (o === tenant || (typeof o !== 'string' && o.has(tenant))) own = blocks;
      if (typeof o === 'string' ? o !== tenant : o.size > (o.has(tenant) ? 1 : 0)) other = blocks;
      return true;
    });
    return other <= own;
  }

  /** Whether a tenant other than `tenant` has had anything recorded. */
  seenOtherThan(tenant: string): boolean {
    return this.manyTenants || (this.firstTenant !== undefined && this.firstTenant !== tenant);
  }

  /** Records that the server computed `tokens` for `tenant` (their KV may now be reused). */
  record(tenant: string, tokens: readonly number[]): void {
    this.firstTenant ??= tenant;
    if (tenant !== this.firstTenant) this.manyTenants = true;
    this.forEachBlock(tokens, (key) => {
      const o = this.owners.get(key);
      if (o === undefined) this.owners.set(key, tenant);
      else if (typeof o === 'string') {
        if (o !== tenant) this.owners.set(key, new Set([o, tenant]));
      } else o.add(tenant);
      return true;
    });
  }

  /** Blocks held. */
  get size(): number {
    return this.owners.size;
  }

  /**
   * Calls `visit` with the key of each whole block's prefix, in order, until it returns false
   * (a prefix nobody computed has no longer prefix anyone computed either).
   */
  private forEachBlock(tokens: readonly number[], visit: (key: string, blocks: number) => boolean): void {
    // Two 32-bit FNV-1a lanes with different offsets: 64 bits against collisions between prefixes.
    let a = 0x811c9dc5;
    let b = 0x01000193 ^ 0x5bd1e995;
    const whole = tokens.length - (tokens.length % this.blockTokens);
    for (let i = 0; i < whole; i++) {
      const t = tokens[i] as number;
      a = Math.imul(a ^ t, 0x01000193);
      b = Math.imul(b ^ (t + 0x9e3779b9), 0x01000193);
      if ((i + 1) % this.blockTokens === 0 && !visit(`${a >>> 0}:${b >>> 0}`, (i + 1) / this.blockTokens)) return;
    }
  }
}
