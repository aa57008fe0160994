import { describe, expect, it } from 'vitest';
import { DecayingLinearFit } from '../src/speculative/decaying-stats.js';
import { PairEstimates, PositionAcceptance } from '../src/speculative/estimates.js';

/** A seeded generator (Park–Miller), so the sequence of observations is the same every run. */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

describe('derived estimates kept between observations', () => {
  it('expected tokens and hit probabilities follow every new proposal (never a stale product)', () => {
    const rng = lcg(7);
    const a = new PositionAcceptance(0.97);
    const e = new PairEstimates();
    expect(a.expectedTokens(4)).toBe(1);
    expect(a.allAccepted(3)).toBe(0);
    for (let round = 0; round < 200; round++) {
      const k = 1 + Math.floor(rng() * 8);
      const accepted = Math.floor(rng() * (k + 1));
      a.add(k, accepted);
      e.acceptance.add(k, accepted);
      for (const n of [1, 3, 9, 12]) {
        let chain = 1;
        let expected = 1;
        for (let i = 0; i < n; i++) {
          chain *= a.rate(i) as number;
          expected += chain;
        }
        expect(a.expectedTokens(n)).toBe(expected);
        expect(a.allAccepted(n)).toBe(chain);
        expect(e.hitProbability(n - 1)).toBe(e.acceptance.allAccepted(n));
      }
    }
  });

  it('a restored snapshot replaces what was derived before it', () => {
    const a = new PositionAcceptance(1);
    a.add(4, 4);
    const high = a.expectedTokens(4);
    const b = new PositionAcceptance(1);
    b.add(4, 0);
    a.restore(b.snapshot());
    expect(a.expectedTokens(4)).toBe(b.expectedTokens(4));
    expect(a.expectedTokens(4)).toBeLessThan(high);
  });

  it('the linear fit predicts from its current sums after add, forget and restore', () => {
    const fit = new DecayingLinearFit(0.9, () => 0);
    fit.add(1, 10);
    fit.add(3, 14);
    const before = fit.predict(5) as number;
    fit.add(5, 40);
    expect(fit.predict(5)).toBeGreaterThan(before);
    const grown = fit.predict(5) as number;
    fit.forget(0.1);
    fit.add(5, 0, 5);
    expect(fit.predict(5)).toBeLessThan(grown);
    const fresh = new DecayingLinearFit(0.9, () => 0);
    fresh.add(2, 7);
    fit.restore(fresh.snapshot());
    expect(fit.predict(2)).toBe(fresh.predict(2));
  });
});

describe('probe spacing', () => {
  it('probes every 128 target-only tokens unless a probe would cost more than 5 % of the pace', async () => {
    const { probeSpacingTokens, PROBE_BUDGET } = await import('../src/speculative/planner.js');
    expect(probeSpacingTokens(128, undefined, 5)).toBe(128);
    expect(probeSpacingTokens(128, { roundMs: 20, expectedTokens: 4 }, 5)).toBe(128);
    // A 100 ms round for 4 tokens the target makes alone in 20: 80 ms lost, spread over 320 tokens.
    expect(PROBE_BUDGET).toBe(0.05);
    expect(probeSpacingTokens(128, { roundMs: 100, expectedTokens: 4 }, 5)).toBe(320);
  });

  it('spaces probes by the generations sharing the target, so their wall-time rate stays that of one', async () => {
    const { probeSpacingTokens } = await import('../src/speculative/planner.js');
    expect(probeSpacingTokens(128, undefined, 5, 15)).toBe(16 * 128);
    expect(probeSpacingTokens(128, { roundMs: 100, expectedTokens: 4 }, 5, 3)).toBe(4 * 320);
    expect(probeSpacingTokens(128, { roundMs: 100, expectedTokens: 4 }, 5, -1)).toBe(320);
  });
});
