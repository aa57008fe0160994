import type { PairEstimates } from './estimates.js';
import type { Rng } from './sampling.js';

/**
 * What to do next: a speculative round with window k, or let the target generate alone.
 * `settled` target-only decisions come from comparing measured costs; unsettled ones are there to
 * measure the target alone, which only a stretch through the engine can do.
 */
export type WindowDecision = { kind: 'speculate'; k: number; reason: string } | { kind: 'target-only'; reason: string; settled: boolean };

/** Options of the adaptive window. */
export interface AdaptiveWindowOptions {
  min: number;
  max: number;
  /** k for a pair nothing is known about yet. */
  initialK: number;
  /** Speculate only when it is predicted at least this much faster than the target alone (0.05 = 5 %). */
  margin: number;
  /** Probability of trying k ± 1 instead of the best k, so the cost fits see more than one k. */
  explore: number;
  /** Whether draft-ahead hides draft time behind verification. */
  draftAhead: boolean;
  rng: Rng;
}

/** A prediction for one k. */
export interface WindowPrediction {
  k: number;
  expectedTokens: number;
  roundMs: number;
  msPerToken: number;
}

/**
 * Chooses k each round to maximise expected generated tokens per second:
 *
 *   E(k)    = 1 + Σ_{i=1..k} Π_{j≤i} α_j                 (α_j: acceptance at position j given j−1 accepted)
 *   cost(k) = draft(k) · (1 − h(k)) + verify(k + 1)      (h(k) = Π_{j≤k+1} α_j: draft-ahead hit chance)
 *   k*      = argmax_k E(k) / cost(k)
 *
 * and speculates only when cost(k*)/E(k*) < (1 − margin) · t₁, where t₁ is the target's own time per
 * token when it streams alone (one round trip in all). draft() and verify() are the online linear
 * fits of measured request times (network included); E(k) uses the measured per-position acceptance.
 * With nothing known it starts at `initialK`; with no target-only figure it asks for a target-only
 * stretch to measure one (never slower than the target alone).
 */
export class AdaptiveWindow {
  constructor(
    private readonly estimates: PairEstimates,
    private readonly o: AdaptiveWindowOptions,
  ) {}

  /** Expected tokens committed by a round of window k. */
  expectedTokens(k: number): number {
    let total = 1;
    let chain = 1;
    for (let i = 0; i < k; i++) {
      chain *= this.estimates.acceptance.rate(i) ?? 0;
      total += chain;
    }
    return total;
  }

  /** Predicted time per token with window k, or undefined before any measurement. */
  predict(k: number): WindowPrediction | undefined {
    const verify = this.estimates.verifyMs.predict(k + 1);
    const draft = k === 0 ? 0 : this.estimates.draftMs.predict(k);
    if (verify === undefined || draft === undefined) return undefined;
    let hit = 1;
    for (let i = 0; i <= k; i++) hit *= this.estimates.acceptance.rate(i) ?? 0;
    const roundMs = draft * (this.o.draftAhead ? 1 - hit : 1) + verify;
    const expectedTokens = this.expectedTokens(k);
    return { k, expectedTokens, roundMs, msPerToken: roundMs / expectedTokens };
  }

  /** The best k by prediction (ties to the smaller k). */
  best(): WindowPrediction | undefined {
    let best: WindowPrediction | undefined;
    for (let k = Math.max(1, this.o.min); k <= this.o.max; k++) {
      const p = this.predict(k);
      if (p !== undefined && (best === undefined || p.msPerToken < best.msPerToken)) best = p;
    }
    return best;
  }

  /** The decision for the next stretch of generation. */
  decide(): WindowDecision {
    const e = this.estimates;
    // A few unlucky first rounds must not settle a pair: learn from at least 8 proposals.
    if (e.acceptance.weight < 8 || e.verifyMs.weight < 4) return { kind: 'speculate', k: this.o.initialK, reason: 'learning the pair' };
    const targetOnly = e.targetOnlyMsPerToken.value;
    if (targetOnly === undefined || e.targetOnlyMsPerToken.weight < 4) return { kind: 'target-only', reason: 'measuring the target alone', settled: false };
    const best = this.best();
    if (best === undefined || best.msPerToken >= (1 - this.o.margin) * targetOnly) {
      return { kind: 'target-only', reason: `speculation predicted at ${best?.msPerToken.toFixed(2) ?? '?'} ms/token vs ${targetOnly.toFixed(2)} alone`, settled: true };
    }
    let k = best.k;
    if (this.o.rng() < this.o.explore) k = Math.min(this.o.max, Math.max(Math.max(1, this.o.min), k + (this.o.rng() < 0.5 ? -1 : 1)));
    return { kind: 'speculate', k, reason: `k=${best.k} predicted at ${best.msPerToken.toFixed(2)} ms/token vs ${targetOnly.toFixed(2)} alone` };
  }
}
