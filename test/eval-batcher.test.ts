import { describe, expect, it } from 'vitest';
import { EvalBatcher, type EvalJob } from '../src/engine/native/eval-batcher.js';
import type { EngineHandle, EvalArgs, NativeApi } from '../src/engine/native/native-library.js';
import { EvaluationOverlap } from '../src/engine/sequence-pool.js';

const GREEDY = { sampling: { temperature: 0, topK: 0, topP: 1, minP: 0 }, topN: 0 } as EvalJob['s'];

/** A shim whose "target" always says the next token is the last one + 1; it records each call. */
function fakeApi(calls: { seq: number[]; tokens: number[]; outputs: number[] }[]): NativeApi {
  return {
    isEog: () => 0,
    evalAsync: async (a: EvalArgs) => {
      calls.push({ seq: [...a.seq], tokens: [...a.tokenCounts], outputs: [...a.outputCounts] });
      let t = 0;
      let o = 0;
      for (let j = 0; j < a.jobs; j++) {
        const n = a.tokenCounts[j] ?? 0;
        const out = a.outputCounts[j] ?? 0;
        for (let i = n - out; i < n; i++) a.outIds[o++] = (a.tokens[t + i] ?? 0) + 1;
        t += n;
      }
      return 0;
    },
  } as unknown as NativeApi;
}

/** A batch cost as the engine would have measured it: 9 ms a pass, 1.47 a position, 16 sharing. */
function measuredOverlap(): EvaluationOverlap {
  const overlap = new EvaluationOverlap();
  for (let i = 0; i < 50; i++)
    for (const [passes, positions] of [
      [1, 16],
      [2, 24],
      [1, 4],
      [3, 40],
    ] as const)
      overlap.record({ positions, generations: 16, ms: 9 * passes + 1.47 * positions, passes });
  return overlap;
}

const job = (seq: number, last: number, drafts: number, contextTokens = 1000): EvalJob => ({
  seq,
  keep: 10,
  tokens: Array.from({ length: drafts + 1 }, (_, i) => last + i),
  outputs: drafts + 1,
  s: GREEDY,
  contextTokens,
});

describe('EvalBatcher laying out a batch for llama.cpp’s equal split', () => {
  it('goes in sequence-id order and cuts a lone drafter among generations decoding alone', async () => {
    const calls: { seq: number[]; tokens: number[]; outputs: number[] }[] = [];
    const batcher = new EvalBatcher(fakeApi(calls), {} as EngineHandle, measuredOverlap());
    const others = [...Array(16).keys()].filter((s) => s !== 5).reverse();
    const answers = await Promise.all([
      batcher.submit(job(5, 50, 4)),
      ...others.map((s) => batcher.submit(job(s, 10, 0))),
    ]);
    expect(calls[0]?.seq).toEqual([...calls[0]!.seq].sort((a, b) => a - b));
    // Its drafts (all correct) would cost the 16 a second pass: it verifies none of them.
    expect(answers[0]!.map((t) => t.id)).toEqual([51]);
    expect(calls[0]?.tokens.every((n) => n === 1)).toBe(true);
  });

  it('pads one generation decoding alone beside sure drafters, and never past its context', async () => {
    const calls: { seq: number[]; tokens: number[]; outputs: number[] }[] = [];
    const batcher = new EvalBatcher(fakeApi(calls), {} as EngineHandle, measuredOverlap());
    // Drafts that always pass teach the batcher these sequences' acceptance.
    for (let r = 0; r < 6; r++) await Promise.all([0, 1, 2, 3].map((s) => batcher.submit(job(s, 100, 4))));
    const [a, b, alone, c] = await Promise.all([
      batcher.submit(job(0, 200, 4)),
      batcher.submit(job(1, 300, 4)),
      batcher.submit(job(2, 400, 0)),
      batcher.submit(job(3, 500, 4)),
    ]);
    expect(calls.at(-1)).toMatchObject({ tokens: [5, 5, 5, 5], outputs: [5, 5, 5, 5] });
    expect(a!.map((t) => t.id)).toEqual([201, 202, 203, 204, 205]);
    expect(b).toHaveLength(5);
    expect(c).toHaveLength(5);
    // The padded one gets its own answer only.
    expect(alone!.map((t) => t.id)).toEqual([401]);
    // At the end of its context (keep 10 + 1 token + 2 free positions) it gets 2 filler positions.
    await Promise.all([
      batcher.submit(job(0, 200, 4)),
      batcher.submit(job(1, 300, 4)),
      batcher.submit(job(2, 400, 0, 13)),
      batcher.submit(job(3, 500, 4)),
    ]);
    expect(calls.at(-1)?.tokens[2]).toBeLessThanOrEqual(3);
  });
});
