import { describe, expect, it } from 'vitest';
import { EvaluationOverlap } from '../src/engine/sequence-pool.js';
import { draftsWorthVerifying } from '../src/speculative/batch-window.js';
import { PositionAcceptance } from '../src/speculative/estimates.js';
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
