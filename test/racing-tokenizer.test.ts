import { describe, expect, it } from 'vitest';
import type { ModelServer } from '../src/backends/types.js';
import { RacingTokenizer, type Tokenize } from '../src/server/generation/racing-tokenizer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const signal = () => new AbortController().signal;

/** A target whose /tokenize answers after `ms` with `ids` (or fails), counting its calls. */
function target(ms: number, ids: number[] | Error) {
  const calls = { n: 0 };
  const server = {
    tokenize: async () => {
      calls.n += 1;
      await sleep(ms);
      if (ids instanceof Error) throw ids;
      return ids;
    },
  } as unknown as ModelServer;
  return { server, calls };
}
const draft =
  (ms: number, ids: number[] | Error): Tokenize =>
  async () => {
    await sleep(ms);
    if (ids instanceof Error) throw ids;
    return ids;
  };

describe('racing tokenizer (draft first, target confirms)', () => {
  it('takes the near draft answer, then confirms it against the target without asking twice', async () => {
    const t = target(40, [1, 2, 3]);
    const r = new RacingTokenizer(t.server, draft(0, [1, 2, 3]));
    const started = performance.now();
    expect(await r.fast('x', true, signal())).toEqual([1, 2, 3]);
    expect(performance.now() - started).toBeLessThan(35);
    expect(r.provisional).toBe(true);
    expect(await r.confirmed()).toBe(true);
    expect(await r.targetTokenize('x', true, signal())).toEqual([1, 2, 3]);
    expect(t.calls.n).toBe(1);
  });

  it('a draft that tokenizes differently is found out', async () => {
    const r = new RacingTokenizer(target(10, [1, 2, 3]).server, draft(0, [1, 2, 4]));
    expect(await r.fast('x', true, signal())).toEqual([1, 2, 4]);
    expect(await r.confirmed()).toBe(false);
    expect(await r.targetTokenize('x', true, signal())).toEqual([1, 2, 3]);
  });

  it('a failing or slower draft leaves the target answer, which needs no confirmation', async () => {
    for (const d of [draft(0, new Error('draft down')), draft(60, [9])]) {
      const r = new RacingTokenizer(target(10, [1, 2]).server, d);
      expect(await r.fast('x', false, signal())).toEqual([1, 2]);
      expect(r.provisional).toBe(false);
      expect(await r.confirmed()).toBe(true);
    }
  });

  it(
    'a target that fails after the draft answered fails the confirmation (and leaves no unhandled ' + 'rejection)',
    async () => {
      const r = new RacingTokenizer(target(10, new Error('target down')).server, draft(0, [1]));
      expect(await r.fast('x', true, signal())).toEqual([1]);
      await expect(r.confirmed()).rejects.toThrow('target down');
      // Never asked for: still handled.
      const unasked = new RacingTokenizer(target(5, new Error('target down')).server, draft(0, [1]));
      await unasked.fast('y', true, signal());
      await sleep(20);
    },
  );
});
