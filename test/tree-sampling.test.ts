import { describe, expect, it } from 'vitest';
import type { EngineSequence } from '../src/engine/types.js';
import { type Rng, sampleFrom, seededRng } from '../src/speculative/sampling.js';
import type { GeneratedToken } from '../src/speculative/types.js';
import { deliver, type ProposalInbox, serveAssisted } from '../src/verifier/link/assisted-loop.js';
import { chiSquareTwoSample } from './helpers/chi-square.js';

/** The target: the next token's distribution given the last one (4 tokens, every row uncertain). */
const TARGET = [
  [0.1, 0.5, 0.3, 0.1],
  [0.2, 0.1, 0.4, 0.3],
  [0.35, 0.15, 0.1, 0.4],
  [0.3, 0.3, 0.2, 0.2],
];

/** Raises a row to 1/T and renormalises: the control's different distribution. */
const tempered = (rows: number[][], t: number) =>
  rows.map((row) => {
    const w = row.map((p) => p ** (1 / t));
    const sum = w.reduce((a, b) => a + b, 0);
    return w.map((p) => p / sum);
  });

/**
 * A sequence that samples its own token after each scored position from `rows`, with fresh
 * randomness per position: what a real engine's sampler does at T > 0.
 */
function markovSequence(rows: number[][], rng: Rng): EngineSequence {
  const seq = {
    held: [] as number[],
    async evaluate(from: number, tokens: readonly number[], positions: number): Promise<GeneratedToken[]> {
      seq.held = [...seq.held.slice(0, from), ...tokens];
      return seq.held.slice(-positions).map((last) => {
        const row = rows[last] ?? [];
        return {
          id: sampleFrom(
            row.map((prob, id) => ({ id, prob })),
            rng,
          ),
        };
      });
    },
    release() {},
  };
  return seq;
}

/**
 * A tree a greedy draft could send from [0]: its chain, and branches where it would hesitate,
 * so that the target's sample often leaves the chain onto a branch, sometimes past both.
 */
const TREE = {
  at: 1,
  d: [1, 2, 3, 0],
  b: [
    [0, [2, 3, 1]],
    [0, [3, 0]],
    [1, [3, 1, 2]],
    [2, [0, 1]],
  ] as [number, number[]][],
};

const SAMPLING = { sampling: { temperature: 0.8, topP: 1, topK: 0, minP: 0 }, topN: 0 };
const TOKENS = 3;

/** `n` generations of TOKENS tokens after [0], each with the tree in its inbox (or none). */
async function generate(n: number, o: { rows: number[][]; tree: boolean; seed: number }) {
  const rng = seededRng(o.seed);
  const texts: string[] = [];
  let branchSteps = 0;
  let accepted = 0;
  for (let i = 0; i < n; i++) {
    const inbox: ProposalInbox = { proposals: [] };
    if (o.tree) deliver(inbox, TREE);
    const ctx = [0];
    await serveAssisted({
      seq: markovSequence(o.rows, rng),
      ctx,
      sampling: SAMPLING,
      maxTokens: TOKENS,
      inbox,
      signal: new AbortController().signal,
      fixedMs: () => 0,
      emit: (_t, step) => {
        if (step.branch === true) branchSteps += 1;
        accepted += step.accepted;
      },
    });
    texts.push(ctx.slice(1).join(','));
  }
  return { texts, branchSteps, accepted };
}

describe('sample-and-match along a tree’s branches at T > 0', () => {
  const N = 4000;
  const ALPHA = 0.001;

  it('keeps the target’s distribution of continuations (two-sample χ²); a tempered one is rejected', async () => {
    const viaTree = await generate(N, { rows: TARGET, tree: true, seed: 11 });
    const alone = await generate(N, { rows: TARGET, tree: false, seed: 12 });
    const control = await generate(N, { rows: tempered(TARGET, 0.7), tree: false, seed: 13 });
    const test = chiSquareTwoSample(viaTree.texts, alone.texts);
    const power = chiSquareTwoSample(control.texts, alone.texts);
    console.log(
      `tree at T>0: χ²=${test.statistic.toFixed(1)} df=${test.degreesOfFreedom} p=${test.pValue.toFixed(3)}; ` +
        `branch steps ${viaTree.branchSteps}, accepted drafts ${viaTree.accepted} in ${N} generations; ` +
        `control p=${power.pValue.toExponential(1)}`,
    );
    // The test means something only if branches were taken often and drafts were accepted along them.
    expect(viaTree.branchSteps).toBeGreaterThan(N / 4);
    expect(viaTree.accepted).toBeGreaterThan(N / 2);
    expect(test.pValue).toBeGreaterThan(ALPHA);
    expect(power.pValue).toBeLessThan(ALPHA);
  });

  it('has the power to see a verifier biased 0.1 toward the chain’s token at every position', async () => {
    // The bias a lossy rule would leave (trusting a draft the target was unsure of moves mass onto
    // the chain's tokens): here 0.1 of probability at each position.
    const lossy = TARGET.map((row, last) => {
      const drafted = [1, 2, 3, 0][last] ?? 0;
      return row.map((p, id) => (id === drafted ? p + 0.1 : p * (1 - 0.1 / (1 - (row[drafted] ?? 0)))));
    });
    const biased = await generate(N, { rows: lossy, tree: true, seed: 14 });
    const alone = await generate(N, { rows: TARGET, tree: false, seed: 15 });
    expect(chiSquareTwoSample(biased.texts, alone.texts).pValue).toBeLessThan(ALPHA);
  });
});
