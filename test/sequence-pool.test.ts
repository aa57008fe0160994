import { describe, expect, it } from 'vitest';
import { type PooledSequence, SequencePool } from '../src/engine/sequence-pool.js';
import { commonPrefix } from '../src/speculative/common-prefix.js';
import { refuted } from '../src/verifier/link/link-connection.js';

function seq(held: number[]): PooledSequence & { release(): void } {
  const s = {
    held,
    owner: '',
    onRelease: () => {},
    forget: () => {
      held.length = 0;
    },
    release: () => s.onRelease(),
  };
  return s;
}

describe('SequencePool', () => {
  it('hands out the idle sequence holding the longest prefix of the prompt', async () => {
    const a = seq([1, 2, 3]);
    const b = seq([1, 5, 6, 7]);
    const pool = new SequencePool([a, b]);
    expect(await pool.acquire([1, 5, 6, 9], AbortSignal.timeout(1000))).toBe(b);
    expect(pool.load()).toMatchObject({ busy: 1, idle: 1, reusedPrefixTokens: 3 });
  });

  it('reuses a prefix only within one cache scope; another scope’s sequence is wiped before use', async () => {
    const a = seq([1, 2, 3, 4]);
    const b = seq([9]);
    const pool = new SequencePool([a, b]);
    // Tenant A's KV for [1, 2, 3, 4]: tenant B asking for the same prompt must not reuse it.
    const first = await pool.acquire([1, 2, 3, 4, 5], AbortSignal.timeout(1000), 'tenant-a');
    expect(first.held).toEqual([]); // both were scope '' before: whichever it got was wiped
    (first.held as number[]).push(1, 2, 3, 4, 5);
    first.release();
    const other = await pool.acquire([1, 2, 3, 4, 5], AbortSignal.timeout(1000), 'tenant-b');
    expect(other.held).toEqual([]);
    expect(other.owner).toBe('tenant-b');
    other.release();
    const again = await pool.acquire([1, 2, 3, 4, 5, 6], AbortSignal.timeout(1000), 'tenant-a');
    expect(again).toBe(first);
    expect(again.held).toEqual([1, 2, 3, 4, 5]);
  });

  it('with compactBelowTokens, keeps the busy sequences next to each other unless a prefix is worth more', async () => {
    const signal = AbortSignal.timeout(1000);
    const [s0, s1, s2, s3] = [seq([]), seq([]), seq([]), seq([])] as const;
    const pool = new SequencePool([s0, s1, s2, s3], { compactBelowTokens: 4 });
    const first = await pool.acquire([1, 2], signal);
    first.release();
    // Released, s0 is idle longest last; nothing busy, so the old rule (idle longest) picks s1.
    expect(await pool.acquire([7, 8], signal)).toBe(s1);
    (s3.held as number[]).push(7, 8, 9);
    // s3 shares 3 tokens (< 4): not worth a stray id; s2 (idle longest of s0 and s2) sits next to s1.
    expect(await pool.acquire([7, 8, 9, 1], signal)).toBe(s2);
    (s3.held as number[]).push(1, 2);
    // 5 tokens shared: worth reusing even on a stray id.
    expect(await pool.acquire([7, 8, 9, 1, 2, 3], signal)).toBe(s3);
  });

  it('queues acquirers in order while every sequence is busy, and an aborted wait leaves the queue', async () => {
    const a = seq([]);
    const pool = new SequencePool([a]);
    await pool.acquire([1], AbortSignal.timeout(1000));
    const gone = new AbortController();
    const first = pool.acquire([1], gone.signal);
    const second = pool.acquire([2], AbortSignal.timeout(1000));
    gone.abort(new Error('client left'));
    await expect(first).rejects.toThrow('client left');
    expect(pool.load().waiting).toBe(1);
    a.release();
    expect(await second).toBe(a);
  });

  it('counts the common prefix of two token lists', () => {
    expect(commonPrefix([1, 2, 3], [1, 2, 4])).toBe(2);
    expect(commonPrefix([], [1])).toBe(0);
    expect(commonPrefix([1, 2], [1, 2, 3])).toBe(2);
  });
});

describe('early rounds refuted by the last verdict', () => {
  // Last round scored ctx [1,2,3] and committed drafts [4,5] then the target's own 6.
  const truth = { baseLength: 3, tail: [4, 5, 6] };

  it('a round that continues what was committed is evaluated', () => {
    expect(refuted(truth, [1, 2, 3, 4, 5, 6], 3)).toBe(false);
    expect(refuted(truth, [1, 2, 3, 4, 5, 6, 7, 8], 3)).toBe(false);
    expect(refuted(truth, [1, 2, 3, 4], 3)).toBe(false);
  });

  it('a round that bet on another token is stale', () => {
    expect(refuted(truth, [1, 2, 3, 4, 9, 6], 3)).toBe(true);
    expect(refuted(truth, [1, 2, 3, 4, 5, 7], 3)).toBe(true);
  });

  it('no verdict, or a rewound context, refutes nothing', () => {
    expect(refuted(undefined, [1, 9], 1)).toBe(false);
    expect(refuted(truth, [1, 2, 9, 9], 2)).toBe(false);
  });
});
