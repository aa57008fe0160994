import { chainHitMs } from './chain-cost.js';
import type { PairEstimates } from './estimates.js';
import type { Rng } from './sampling.js';

/**
 * What to do next: a speculative round with window k, or let the target generate alone.
 * `settled` target-only decisions come from comparing measured costs; unsettled ones are there to
 * measure the target alone, which only a stretch through the engine can do.
 */
export type WindowDecision =
  | {
      kind: 'speculate';
      k: number;
      reason: string;
      aheadDepth?: number;
      /** Predicted time saved per token against the target alone, and what dropping a running
       *  target-only stream to resume rounds costs (a round trip): resume only if it pays back. */
      switchEconomics?: { savedMsPerToken: number; switchMs: number };
      /** A single round to re-measure the round cost while the pair runs target-only. */
      probe?: true;
      /** On a probe: the target-only decision it stands in for was a close call. */
      closeCall?: boolean;
      /** The user fixed k: nothing else moves it. */
      fixed?: true;
    }
  | {
      kind: 'target-only';
      reason: string;
      settled: boolean;
      /** Speculation predicted within CLOSE_CALL of the target alone: fresh estimates could flip it. */
      closeCall?: boolean;
    };

/** A settled target-only decision is a close call when speculation is predicted within this factor. */
export const CLOSE_CALL = 1.15;

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
  /** Most rounds draft-ahead may send for verification before the previous verdict (0: draft only). */
  aheadDepth: number;
  rng: Rng;
}

/** A prediction for one k. */
export interface WindowPrediction {
  k: number;
  expectedTokens: number;
  roundMs: number;
  msPerToken: number;
  /** Rounds sent ahead that this prediction assumes. */
  aheadDepth: number;
}

/** What a round of window k is predicted to cost and commit, before its depth is chosen. */
interface RoundInputs {
  k: number;
  verifyMs: number;
  draftMs: number;
  nextDraftMs: number;
  hit: number;
  expectedTokens: number;
}

/**
 * Chooses k each round to maximise expected generated tokens per second:
 *
 *   E(k)       = 1 + Σ_{i=1..k} Π_{j≤i} α_j            (α_j: acceptance at position j given j−1 accepted)
 *   h(k)       = Π_{j≤k+1} α_j                          (draft-ahead hit: all k accepted, bonus guessed)
 *   cost(k, d) = (1 − h) · (draft(k) + verify(k+1)) + s · chainHitMs(h, draft(k+1), verify(k+1), d)
 *                                                        (see chainHitMs; s: measured ÷ modelled wait
 *                                                        of early rounds, taken ≥ 1: ≈ 1 on a batching
 *                                                        server, larger where rounds share cores)
 *   k*, d*     = argmax E(k) / cost(k, d), near-ties to the deeper d where s < 1.5
 *
 * and speculates only when cost(k*, d*)/E(k*) < (1 − margin) · t₁, where t₁ is the target's own
 * time per token when it streams alone (one round trip in all). draft() and verify() are the online linear
 * fits of measured request times (network included), verify() corrected by what rounds of each k
 * measured beyond the line (PairEstimates.verifyMsAt); E(k) uses the measured per-position acceptance.
 * With nothing known it starts at `initialK`; with no target-only figure it asks for a target-only
 * stretch to measure one (never slower than the target alone).
 */
export class AdaptiveWindow {
  constructor(
    private readonly estimates: PairEstimates,
    private readonly o: AdaptiveWindowOptions,
  ) {}

  private latest: WindowPrediction | undefined;

  /** The best prediction the last decide() compared (undefined while it was still learning). */
  get lastBest(): WindowPrediction | undefined {
    return this.latest;
  }

  /** Expected tokens committed by a round of window k. */
  expectedTokens(k: number): number {
    return this.estimates.acceptance.expectedTokens(k);
  }

  /** Predicted time per token with window k and `depth` rounds sent ahead, or undefined before any measurement. */
  predict(k: number, depth = 0): WindowPrediction | undefined {
    const inputs = this.inputs(k);
    return inputs === undefined ? undefined : this.predictFrom(inputs, depth);
  }

  /** What a prediction for k needs whatever its depth (computed once per k: best() asks for each depth). */
  private inputs(k: number): RoundInputs | undefined {
    const verifyMs = this.estimates.verifyMsAt(k);
    const draftMs = k === 0 ? 0 : this.estimates.draftMs.predict(k);
    if (verifyMs === undefined || draftMs === undefined) return undefined;
    return {
      k,
      verifyMs,
      draftMs,
      nextDraftMs: this.estimates.draftMs.predict(k + 1) ?? draftMs,
      hit: this.estimates.hitProbability(k),
      expectedTokens: this.expectedTokens(k),
    };
  }

  private predictFrom(r: RoundInputs, depth: number): WindowPrediction {
    const { k, hit, draftMs: draft, verifyMs: verify, expectedTokens } = r;
    let roundMs = draft + verify;
    if (this.o.draftAhead && k > 0) {
      // Never below 1: chainHitMs already prices each round of a chain at its wait after the
      // previous verdict; s only prices chains up where early rounds share the target's cores.
      const slowdown = depth === 0 ? 1 : Math.max(1, this.estimates.aheadSlowdown.value ?? 1);
      roundMs =
        (1 - hit) * (draft + verify) +
        Math.min(
          hit * (draft + verify),
          slowdown * chainHitMs({ hit, nextDraftMs: r.nextDraftMs, verifyMs: verify, depth }),
        );
    }
    return { k, expectedTokens, roundMs, msPerToken: roundMs / expectedTokens, aheadDepth: depth };
  }

  /** The best k by prediction (ties to the smaller k), each k with its best depth. */
  best(): WindowPrediction | undefined {
    let best: WindowPrediction | undefined;
    for (let k = Math.max(1, this.o.min); k <= this.o.max; k++) {
      const p = this.bestDepth(k);
      if (p !== undefined && (best === undefined || p.msPerToken < best.msPerToken)) best = p;
    }
    return best;
  }

  /**
   * The fastest depth. Near-ties go to the deeper one where early rounds have been seen to overlap
   * (a batching target): the model prices a chain by its slowest stage alone, while in practice
   * draft times vary and a deeper chain absorbs that. Elsewhere they go to the shallower one, since
   * a dropped early round is target work spent for nothing.
   */
  private bestDepth(k: number): WindowPrediction | undefined {
    const inputs = this.inputs(k);
    if (inputs === undefined) return undefined;
    const maxDepth = this.o.draftAhead ? this.o.aheadDepth : 0;
    if (maxDepth === 0) return this.predictFrom(inputs, 0);
    const byDepth: WindowPrediction[] = [];
    for (let d = 0; d <= maxDepth; d++) byDepth.push(this.predictFrom(inputs, d));
    const fastest = Math.min(...byDepth.map((p) => p.msPerToken));
    const overlaps = (this.estimates.aheadSlowdown.value ?? 1) < 1.5;
    return (overlaps ? byDepth.reverse() : byDepth).find((p) => p.msPerToken <= fastest * 1.005);
  }

  /** The decision for the next stretch of generation. */
  decide(): WindowDecision {
    const e = this.estimates;
    this.latest = undefined;
    // A few unlucky first rounds must not settle a pair: learn from at least 8 proposals.
    if (e.acceptance.weight < 8 || e.verifyMs.weight < 4)
      return { kind: 'speculate', k: this.o.initialK, reason: 'learning the pair' };
    const targetOnly = e.targetOnlyMsPerToken.value;
    if (targetOnly === undefined || e.targetOnlyMsPerToken.weight < 4)
      return { kind: 'target-only', reason: 'measuring the target alone', settled: false };
    const best = this.best();
    this.latest = best;
    if (best === undefined || best.msPerToken >= (1 - this.o.margin) * targetOnly) {
      const closeCall = best !== undefined && best.msPerToken < CLOSE_CALL * targetOnly;
      return {
        kind: 'target-only',
        reason:
          `speculation predicted at ${best?.msPerToken.toFixed(2) ?? '?'} ms/token vs ` +
          `${targetOnly.toFixed(2)} alone`,
        settled: true,
        closeCall,
      };
    }
    let k = best.k;
    // Exploring up to 3 either side spreads the k the cost fits see: with ±1 alone their slope stays
    // near its prior, which overprices large windows when a round trip dominates the request time.
    if (this.o.rng() < this.o.explore)
      k = Math.min(
        this.o.max,
        Math.max(Math.max(1, this.o.min), k + (this.o.rng() < 0.5 ? -1 : 1) * (1 + Math.floor(this.o.rng() * 3))),
      );
    const switchEconomics = { savedMsPerToken: targetOnly - best.msPerToken, switchMs: e.verifyMs.predict(1) ?? 0 };
    return {
      kind: 'speculate',
      k,
      aheadDepth: best.aheadDepth,
      switchEconomics,
      // Written only when read (a trace, the dashboard): formatting it every round was a tenth of DSD-Si's time.
      get reason() {
        return (
          `k=${best.k}, ${best.aheadDepth} ahead, predicted at ${best.msPerToken.toFixed(2)} ms/token vs ` +
          `${targetOnly.toFixed(2)} alone`
        );
      },
    };
  }
}
