import { describe, expect, it } from 'vitest';
import { shapeBatch } from '../src/engine/native/batch-shape.js';
import { equalSplitPasses } from '../src/engine/native/equal-split.js';
import { DecayingStepFit } from '../src/speculative/decaying-stats.js';

const ones = (seqs: number[]) => seqs.map((seq) => ({ seq, tokens: 1 }));

describe('equalSplitPasses (llama.cpp equal split over a KV stream per sequence)', () => {
  it('takes single tokens of consecutive ids in one pass', () => {
    expect(equalSplitPasses(ones([0, 1, 2, 3]), 512)).toEqual([4]);
  });

  it('splits at a gap in the ids, and at ids out of order', () => {
    expect(equalSplitPasses(ones([0, 1, 3, 4]), 512)).toEqual([2, 2]);
    expect(equalSplitPasses(ones([1, 0, 2]), 512)).toEqual([2, 1]);
  });

  it('makes a second pass for one generation that verifies drafts among single tokens', () => {
    const shares = [...ones([0, 1, 2]), { seq: 3, tokens: 5 }];
    expect(equalSplitPasses(shares, 512)).toEqual([4, 4]);
  });

  it('shares a pass among consecutive generations verifying as many drafts', () => {
    const shares = [0, 1, 2, 3].map((seq) => ({ seq, tokens: 4 }));
    expect(equalSplitPasses(shares, 512)).toEqual([16]);
    expect(equalSplitPasses([...shares.slice(0, 3), { seq: 3, tokens: 2 }], 512)).toEqual([8, 6]);
  });

  it('caps a pass at the ubatch size', () => {
    expect(equalSplitPasses([{ seq: 0, tokens: 1000 }], 512)).toEqual([512, 488]);
  });
});

describe('DecayingStepFit', () => {
  it('separates the fixed part of a pass from the cost of a position', () => {
    const fit = new DecayingStepFit(0.98);
    const shapes = [
      [1, 16],
      [2, 20],
      [1, 4],
      [3, 24],
      [1, 8],
      [2, 32],
    ] as const;
    for (let i = 0; i < 60; i++) for (const [p, n] of shapes) fit.add(p, n, 11.6 * p + 1.4 * n);
    const c = fit.fit();
    expect(c?.fixedMs).toBeCloseTo(11.6, 0);
    expect(c?.positionMs).toBeCloseTo(1.4, 1);
  });

  it('is the intercept fit when every step is one pass, and unknown with no data', () => {
    expect(new DecayingStepFit(0.9).fit()).toBeUndefined();
    const fit = new DecayingStepFit(0.9);
    for (let n = 1; n <= 9; n++) fit.add(1, n, 7 + 2.3 * n);
    expect(fit.fit()?.fixedMs).toBeCloseTo(7, 0);
  });
});

describe('shapeBatch (how many drafts each job of a batch verifies, and filler that evens them out)', () => {
  const cost = { fixedMs: 9.1, positionMs: 1.47 };
  const job = (seq: number, drafts: number, acceptance = 0.8) => ({ seq, pending: 1, drafts, acceptance });
  /** Each job's shape as drafts+filler. */
  const shape = (jobs: Parameters<typeof shapeBatch>[0], c = cost) =>
    shapeBatch(jobs, c, 512).map((x) => `${x.drafts}+${x.pad}`);

  it('cuts a lone drafter among many single tokens: its extra pass costs the batch more than it buys', () => {
    const jobs = [...Array.from({ length: 15 }, (_, i) => job(i, 0)), job(15, 4)];
    expect(shape(jobs)).toEqual(new Array(16).fill('0+0'));
  });

  it('evens out drafts of different lengths into one pass', () => {
    // Asked as is: 4 passes (5, 4, 5 and 3 tokens of ids 0-3); 2 drafts each is one pass.
    expect(shape([job(0, 4), job(1, 3), job(2, 4), job(3, 2)])).toEqual(['2+0', '2+0', '2+0', '2+0']);
    const sure = [0, 1, 2, 3].map((seq) => job(seq, 4, 0.95));
    expect(shape(sure)).toEqual(['4+0', '4+0', '4+0', '4+0']);
  });

  it('pads the one generation decoding alone beside drafters sure of themselves', () => {
    const jobs = [job(0, 4, 0.95), job(1, 4, 0.95), job(2, 0), job(3, 4, 0.95)];
    expect(shape(jobs)).toEqual(['4+0', '4+0', '0+4', '4+0']);
  });

  it('keeps what was asked when drafts rarely pass, alone in the batch, or before any cost is known', () => {
    expect(shape([job(0, 4)])).toEqual(['4+0']);
    expect(shape([job(0, 0), job(1, 4)], { fixedMs: 0, positionMs: 0 })).toEqual(['0+0', '4+0']);
    expect(shape([job(0, 3, 0.05), job(1, 3, 0.05)])).toEqual(['0+0', '0+0']);
  });

  it('lets a prompt be prefilled beside drafts without cutting them for it', () => {
    const prefill = { seq: 0, pending: 40, drafts: 0, acceptance: 0.8 };
    expect(shape([prefill, job(1, 4, 0.9)])).toEqual(['0+0', '4+0']);
  });
});
