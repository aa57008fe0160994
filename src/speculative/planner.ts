import { AdaptiveWindow, type AdaptiveWindowOptions, type WindowDecision } from './adaptive-window.js';
import type { PairEstimates, RoundObservation } from './estimates.js';

export type { WindowDecision } from './adaptive-window.js';

/** Decides each stretch of a generation and learns from what happened. */
export interface SpeculationPlanner {
  decide(): WindowDecision;
  observeRound(o: RoundObservation): void;
  observeShadow(drafted: number, accepted: number, draftWorkMs: number): void;
  observeTargetOnlyGap(ms: number): void;
}

/** Always the same k (still feeding the pair's estimates, so a later adaptive request benefits). */
export function fixedPlanner(k: number, estimates?: PairEstimates): SpeculationPlanner {
  return {
    decide: () => ({ kind: 'speculate', k, reason: 'fixed window' }),
    observeRound: (o) => estimates?.observeRound(o),
    observeShadow: (d, a, ms) => estimates?.observeShadow(d, a, ms),
    observeTargetOnlyGap: (ms) => estimates?.observeTargetOnlyGap(ms),
  };
}

/**
 * The adaptive planner: AdaptiveWindow's decision, plus a periodic probe. While the target runs
 * alone, shadow drafts keep the acceptance estimates fresh, but the cost of a round is only known
 * from rounds; every `probeEveryTokens` target-only tokens one round is tried so a pair whose
 * verification got cheaper (less load, shorter RTT) is noticed.
 */
export function adaptivePlanner(estimates: PairEstimates, options: AdaptiveWindowOptions & { probeEveryTokens: number }): SpeculationPlanner {
  const window = new AdaptiveWindow(estimates, options);
  let targetOnlyTokens = 0;
  return {
    decide: () => {
      const d = window.decide();
      if (d.kind === 'target-only' && targetOnlyTokens >= options.probeEveryTokens && estimates.targetOnlyMsPerToken.weight >= 4) {
        targetOnlyTokens = 0;
        return { kind: 'speculate', k: window.best()?.k ?? options.initialK, reason: 'probing the round cost' };
      }
      return d;
    },
    observeRound: (o) => {
      targetOnlyTokens = 0;
      estimates.observeRound(o);
    },
    observeShadow: (d, a, ms) => estimates.observeShadow(d, a, ms),
    observeTargetOnlyGap: (ms) => {
      targetOnlyTokens += 1;
      estimates.observeTargetOnlyGap(ms);
    },
  };
}
