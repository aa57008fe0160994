import { describe, expect, it } from 'vitest';
import { PREFIX_BLOCK_TOKENS, TenantPrefixIndex } from '../src/cache/tenant-prefix-index.js';

const seq = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

describe('TenantPrefixIndex: a tenant reuses only what it could have reused of its own', () => {
  it('another tenant’s longer prefix withholds the cache; the tenant’s own and shorter ones do not', () => {
    const index = new TenantPrefixIndex();
    const prompt = seq(10 * PREFIX_BLOCK_TOKENS);
    index.record('a', prompt);
    expect(index.mayReuse('a', prompt)).toBe(true);
    expect(index.mayReuse('b', prompt)).toBe(false);
    // A prefix shorter than one block tells nothing worth withholding for.
    expect(index.mayReuse('b', prompt.slice(0, PREFIX_BLOCK_TOKENS - 1))).toBe(true);
    // Once B computed it itself, B may reuse it (whoever's copy the server hands it).
    index.record('b', prompt);
    expect(index.mayReuse('b', prompt)).toBe(true);
    // A's longer context is still A's: B may reuse its own part only as long as A's is no longer.
    const longer = [...prompt, ...seq(3 * PREFIX_BLOCK_TOKENS, 900)];
    index.record('a', longer);
    expect(index.mayReuse('b', longer)).toBe(false);
    expect(index.mayReuse('a', longer)).toBe(true);
    // A different context shares nothing: reuse is fine for anyone.
    expect(index.mayReuse('c', seq(5 * PREFIX_BLOCK_TOKENS, 5000))).toBe(true);
  });

  it('knows when more than one tenant has used the server', () => {
    const index = new TenantPrefixIndex();
    expect(index.seenOtherThan('a')).toBe(false);
    index.record('a', seq(4));
    expect(index.seenOtherThan('a')).toBe(false);
    expect(index.seenOtherThan('b')).toBe(true);
    index.record('b', seq(4));
    expect(index.seenOtherThan('a')).toBe(true);
  });

  it('stays within its bound of blocks', () => {
    const index = new TenantPrefixIndex(100);
    for (let i = 0; i < 50; i++) index.record(`t${i}`, seq(8 * PREFIX_BLOCK_TOKENS, i * 1000));
    expect(index.size).toBe(100);
  });
});
