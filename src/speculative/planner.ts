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
    decide: () => ({ kind: 'speculate', k, reason: 'fixed window', fixed: true }),
    observeRound: (o) => estimates?.observeRound(o),
    observeShadow: (d, a, ms) => estimates?.observeShadow(d, a, ms),
    observeTargetOnlyGap: (ms) => estimates?.observeTargetOnlyGap(ms),
  };
}

/** Target-only tokens between probe rounds: at most one round trip lost per this many tokens. */
export const PROBE_EVERY_TOKENS = 128;

/**
 * Most of the target-only pace that probes may cost. A probe's loss is its round against the
 * target-only tokens it displaces; where a round trip dwarfs the target's step (a fast GPU target
 * 50 ms away: a 100 ms round for 4 tokens that take 20 ms alone), one every 128 tokens cost DSD-Si's
 * 8 B scenario 6 %, so probes are spaced until their predicted loss fits this share (5 %: a pair
 * priced out during a slow spell must still come back within a few requests; test/engine-adaptive).
 */
export const PROBE_BUDGET = 0.05;

/**
 * Target-only tokens before the next probe: PROBE_EVERY_TOKENS, or more where a probe costs more,
 * times the generations sharing the target (1 + `peers`). The pair's count runs over all of them,
 * so 16 streams reach a period 16 times as fast, and a probe's k+1 positions are not its own cost
 * alone: they lengthen every peer's step on a CPU target, and on llama-server they take k slots
 * that peers' conversations sit in (it hands a prompt the most similar idle slot): 16 pinned
 * streams with one probe in a wave waited 1.76 s for their first token instead of 0.13 s, every
 * displaced prompt re-evaluated. Spaced so, the probes of a pair arrive as often in wall time at
 * 16 streams as at one.
 */
export function probeSpacingTokens(
  everyTokens: number,
  predicted: { roundMs: number; expectedTokens: number } | undefined,
  targetOnlyMsPerToken: number | undefined,
  peers = 0,
): number {
  const shared = 1 + Math.max(0, peers);
  if (predicted === undefined || targetOnlyMsPerToken === undefined || targetOnlyMsPerToken <= 0)
    return everyTokens * shared;
  const lossMs = Math.max(0, predicted.roundMs - predicted.expectedTokens * targetOnlyMsPerToken);
  return shared * Math.max(everyTokens, Math.ceil(lossMs / (PROBE_BUDGET * targetOnlyMsPerToken)));
}

/**
 * The adaptive planner: AdaptiveWindow's decision, plus a periodic probe. While the target runs
 * alone, shadow drafts keep the acceptance estimates fresh, but the cost of a round is only known
 * from rounds; once the pair has streamed `probeEveryTokens` target-only tokens since its last
 * round (counted across requests: most requests are shorter than that; more where a probe costs
 * more than PROBE_BUDGET of the pace, see probeSpacingTokens), one round is tried so a
 * pair whose verification got cheaper (less load, shorter RTT) is noticed. A probe never drops a
 * running stream (see `paysToResume`): it waits for the next decision outside one. A probe much
 * cheaper than predicted (`recheckDue`) asks for another at the next request, so a pair that
 * settled during a slow spell comes back within a few requests, not a few probe periods.
 */
export function adaptivePlanner(
  estimates: PairEstimates,
  options: AdaptiveWindowOptions & {
    probeEveryTokens: number;
    /** Other generations on the pair's target now (see probeSpacingTokens); none when absent. */
    peers?: () => number;
  },
): SpeculationPlanner {
  const window = new AdaptiveWindow(estimates, options);
  let probing = false;
  let probed = false;
  return {
    decide: () => {
      const d = window.decide();
      const spacing = probeSpacingTokens(
        options.probeEveryTokens,
        window.lastBest,
        estimates.targetOnlyMsPerToken.value,
        options.peers?.() ?? 0,
      );
      const due = estimates.recheckDue ? !probed : estimates.targetOnlySinceRound >= spacing;
      probing = d.kind === 'target-only' && d.settled && due;
      probed ||= probing;
      // No rounds sent early: the stretch after the probe would drop them, target work for nothing.
      if (probing)
        return {
          kind: 'speculate',
          k: window.lastBest?.k ?? options.initialK,
          aheadDepth: 0,
          reason: 'probing the round cost',
          probe: true,
          closeCall: d.kind === 'target-only' && d.closeCall === true,
        };
      return d;
    },
    observeRound: (o) => {
      estimates.observeRound(o, probing);
      probing = false;
    },
    observeShadow: (d, a, ms) => estimates.observeShadow(d, a, ms),
    observeTargetOnlyGap: (ms) => estimates.observeTargetOnlyGap(ms),
  };
}
