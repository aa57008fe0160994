import type { AcceptanceView } from './generation-acceptance.js';

/** What a batching target's time is made of, as it measures it, and how many share a batch. */
export interface BatchCost {
  /** The part of a batched step that does not grow with its positions. */
  fixedMs: number;
  /** What one more scored position adds to a step. */
  positionMs: number;
  /** Other generations whose work runs in the same steps (a decaying mean). */
  peers: number;
}

/** Below this many peers a round's window is the edge's choice: the target is not shared. */
export const SHARED_TARGET_PEERS = 0.5;

/**
 * How many of k proposed draft tokens a shared target should verify. When generations share the
 * target's batched steps its time is what all of them wait for, so a round is worth the positions
 * that buy the most tokens per unit of it:
 *
 *   j* = argmax_{j ≤ k} E(j) / ((j+1)·v + f/(p+1))     (E: expected tokens, the bonus included;
 *                                                       v: ms per position; f: fixed ms of a step,
 *                                                       split among the p+1 generations in it)
 *
 * With one generation (p < SHARED_TARGET_PEERS) it returns k: the edge chose k for its own
 * latency, network and draft-ahead included, which the target cannot see. Ties go to the
 * smaller j (less target work for the same tokens). `acceptance` is the generation's own where the
 * target tracks it (GenerationAcceptance), so drafts are admitted by what each has shown.
 */
export function draftsWorthVerifying(k: number, acceptance: AcceptanceView, cost: BatchCost): number {
  if (k <= 0 || cost.peers < SHARED_TARGET_PEERS || cost.positionMs <= 0 || acceptance.weight < 8) return k;
  const best = bestVerifiedDrafts(k, acceptance, cost);
  // A generation with too little evidence of its own is tried with one draft rather than shut out:
  // it cannot show it drafts well without being verified (one position of a shared step).
  return best === 0 && acceptance.exploring === true ? 1 : best;
}

/** j* of draftsWorthVerifying over j ≤ k, whatever the target's load. */
function bestVerifiedDrafts(k: number, acceptance: AcceptanceView, cost: BatchCost): number {
  const fixedShare = cost.fixedMs / (Math.max(0, cost.peers) + 1);
  let best = 0;
  let bestRate = 0;
  for (let j = 0; j <= k; j++) {
    const rate = acceptance.expectedTokens(j) / ((j + 1) * cost.positionMs + fixedShare);
    if (rate > bestRate * 1.000001) {
      best = j;
      bestRate = rate;
    }
  }
  return best;
}

/**
 * The window a stream should propose, by the target's own costs: in the stream the target never
 * waits for the network or the draft, so a step's drafts are worth what they buy per unit of the
 * step's time, alone or shared (the same j*, up to `most`). The edge cannot see these costs (its
 * rounds' fits hold the link and the draft), and without them a stream kept the planner's first
 * guess: 4 on a target whose step is mostly fixed cost (11.6 ms fixed, 1.4 a position), where 8
 * verified per step took 5.81 ms a token against 6.69. Undefined until the costs and the
 * generation's acceptance are known (8 proposals).
 */
export function streamWindow(most: number, acceptance: AcceptanceView, cost: BatchCost): number | undefined {
  if (most <= 0 || cost.positionMs <= 0 || acceptance.weight < 8) return undefined;
  return Math.max(1, bestVerifiedDrafts(most, acceptance, cost));
}
