import { describe, expect, it } from 'vitest';
import { EvaluationOverlap } from '../src/engine/sequence-pool.js';
import { draftsWorthVerifying, streamWindow } from '../src/speculative/batch-window.js';
import { PositionAcceptance } from '../src/speculative/estimates.js';
import { GenerationAcceptance } from '../src/speculative/generation-acceptance.js';
import { seededRng } from '../src/speculative/sampling.js';

/** Acceptance learned from 400 seeded rounds of window 8 at per-position acceptance α. */
function learned(alpha: number): PositionAcceptance {
  const a = new PositionAcceptance(0.99);
  const rng = seededRng(3);
  for (let i = 0; i < 400; i++) {
    let accepted = 0;
    while (accepted < 8 && rng() < alpha) accepted += 1;
    a.add(8, accepted);
  }
  return a;
}

// The heavy test target on one CPU thread (docs/verifier.md): a step costs 7 ms + 2.3 ms per position.
const cpu = { fixedMs: 7, positionMs: 2.3 };

describe('drafts worth verifying on a shared target', () => {
  it('alone on the target (no peers), every draft the edge sent is verified', () => {
    expect(draftsWorthVerifying(8, learned(0.9), { ...cpu, peers: 0 })).toBe(8);
    expect(draftsWorthVerifying(8, learned(0.9), { ...cpu, peers: 0.4 })).toBe(8);
  });

  it('16 generations in one batch: one or two drafts (tokens per ms of the target, worked out by hand)', () => {
    // α 0.9, p 15: E(j)/((j+1)·2.3 + 7/16): j=0 0.365, j=1 0.377, j=2 0.369, j=4 0.344 → j = 1.
    expect(draftsWorthVerifying(8, learned(0.9), { ...cpu, peers: 15 })).toBe(1);
    // A poor draft is not worth a position at all there.
    expect(draftsWorthVerifying(8, learned(0.3), { ...cpu, peers: 15 })).toBe(0);
  });

  it('a few peers trim only a long window; a cheap position keeps it', () => {
    const a = learned(0.9);
    const three = draftsWorthVerifying(8, a, { ...cpu, peers: 3 });
    expect(three).toBeGreaterThanOrEqual(2);
    expect(three).toBeLessThan(8);
    // A GPU-like target: positions nearly free next to the step, so the window stays.
    expect(draftsWorthVerifying(8, a, { fixedMs: 30, positionMs: 0.05, peers: 15 })).toBe(8);
  });

  it('learns first: with under 8 proposals seen, or no measured position cost, it keeps the window', () => {
    const fresh = new PositionAcceptance(0.99);
    fresh.add(4, 4);
    expect(draftsWorthVerifying(6, fresh, { ...cpu, peers: 15 })).toBe(6);
    expect(draftsWorthVerifying(6, learned(0.9), { fixedMs: 7, positionMs: 0, peers: 15 })).toBe(6);
  });
});

describe('the window a stream should propose, by the target’s own step costs', () => {
  it('deep where a step is mostly fixed cost, shallow where positions cost, shallower shared', () => {
    const a = learned(0.88);
    // Today's heavy target (bench:native-eval): 11.6 ms a step + 1.4 a position. By hand, E(j)/(11.6 + 1.4(j+1)):
    // j=4 0.210, j=8 0.233, j=9 0.234, j=10 0.234, j=12 0.229 (E from the learned α).
    const deep = streamWindow(16, a, { fixedMs: 11.6, positionMs: 1.4, peers: 0 });
    expect(deep).toBeGreaterThanOrEqual(8);
    expect(deep).toBeLessThanOrEqual(11);
    // The same target as measured in October (7 + 2.3): 4 or 5.
    const shallow = streamWindow(16, a, { ...cpu, peers: 0 });
    expect(shallow).toBeGreaterThanOrEqual(3);
    expect(shallow).toBeLessThanOrEqual(5);
    // Shared by 16, as draftsWorthVerifying (but never below one: the edge's window is at least 1).
    expect(streamWindow(16, a, { ...cpu, peers: 15 })).toBe(draftsWorthVerifying(16, a, { ...cpu, peers: 15 }));
    expect(streamWindow(16, learned(0.3), { ...cpu, peers: 15 })).toBe(1);
    expect(streamWindow(6, a, { fixedMs: 30, positionMs: 0.05, peers: 0 })).toBe(6);
  });

  it('says nothing before 8 proposals or without a measured position cost', () => {
    const fresh = new PositionAcceptance(0.99);
    fresh.add(4, 4);
    expect(streamWindow(16, fresh, { ...cpu, peers: 0 })).toBeUndefined();
    expect(streamWindow(16, learned(0.9), { fixedMs: 7, positionMs: 0, peers: 0 })).toBeUndefined();
  });
});

describe('evaluation overlap', () => {
  it('counts the evaluations in flight together and fits the cost of a position', async () => {
    const overlap = new EvaluationOverlap();
    // Two overlapping evaluations, then one alone: a mean of 2/3 peers per evaluation.
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const first = overlap.track(3, () => gate);
    const second = overlap.track(2, () => gate);
    release();
    await Promise.all([first, second]);
    await overlap.track(1, async () => {});
    const cost = overlap.cost();
    expect(cost.peers).toBeGreaterThan(0.5);
    expect(cost.peers).toBeLessThan(1);
    expect(cost.positionMs).toBeGreaterThanOrEqual(0);
    expect(cost.fixedMs).toBeGreaterThanOrEqual(0);
  });

  it('a failing evaluation leaves the count as it was', async () => {
    const overlap = new EvaluationOverlap();
    await expect(overlap.track(2, async () => Promise.reject(new Error('engine')))).rejects.toThrow('engine');
    await overlap.track(1, async () => {});
    expect(overlap.cost().peers).toBe(0);
  });
});

describe('drafts admitted by each generation’s own acceptance', () => {
  const shared = { ...cpu, peers: 15 };
  /** 300 seeded steps of two generations (α 0.92 and 0.3) on one target, window 8. */
  function admitted(perGeneration: boolean, pairAlpha: number) {
    const pair = learned(pairAlpha);
    const rng = seededRng(11);
    const gens = [0.92, 0.3].map((alpha) => ({ alpha, own: new GenerationAcceptance(pair), steps: 0, accepted: 0 }));
    for (let step = 0; step < 300; step++)
      for (const g of gens) {
        const j = draftsWorthVerifying(8, perGeneration ? g.own : pair, shared);
        if (j === 0) {
          g.own.unverified();
          continue;
        }
        let accepted = 0;
        while (accepted < j && rng() < g.alpha) accepted += 1;
        g.own.add(j, accepted);
        g.steps += 1;
        g.accepted += accepted;
      }
    const [good, poor] = gens as [(typeof gens)[0], (typeof gens)[0]];
    return { good: good.steps / 300, poor: poor.steps / 300, tokens: 600 + good.accepted + poor.accepted };
  }

  it('under load the generation that drafts well is verified and the poor one mostly is not', () => {
    // From a pair estimate below the bar (α 0.6: one draft pays only above about 0.84 here), the
    // good generation shows what it is on its one-draft tries. Seeded: 0.84 and 0.11 measured.
    const own = admitted(true, 0.6);
    expect(own.good).toBeGreaterThan(0.75);
    expect(own.poor).toBeLessThan(0.2);
  });

  it('one pair-wide estimate gave both the same answer, and the poor one pulled it below the bar for all', () => {
    for (const alpha of [0.6, 0.9]) {
      const pairOnly = admitted(false, alpha);
      expect(pairOnly.good).toBe(pairOnly.poor);
      expect(pairOnly.good).toBeLessThan(0.1);
      // Tokens the two made in 300 steps each: 617 against 988 from a good start (seeded).
      expect(admitted(true, alpha).tokens).toBeGreaterThan(1.15 * pairOnly.tokens);
    }
  });

  it('a generation with no evidence of its own is the pair; eight unverified steps make it try one draft', () => {
    const pair = learned(0.6);
    const g = new GenerationAcceptance(pair);
    expect(g.expectedTokens(3)).toBe(pair.expectedTokens(3));
    expect(g.weight).toBe(pair.weight);
    for (let i = 0; i < 10; i++) g.add(4, 0);
    expect(g.expectedTokens(3)).toBeLessThan(0.8 * pair.expectedTokens(3));
    for (let i = 0; i < 7; i++) g.unverified();
    expect(draftsWorthVerifying(8, g, shared)).toBe(0);
    g.unverified();
    expect(g.exploring).toBe(true);
    expect(draftsWorthVerifying(8, g, shared)).toBe(1);
    g.add(1, 0);
    expect(g.exploring).toBe(false);
  });
});
