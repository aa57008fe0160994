import { type Rng, sampleFrom, type TokenProb } from './sampling.js';

/**
 * Acceptance rules: each decides, from the k draft tokens and the target's k+1 positions, which
 * tokens a round commits. All keep the target's output distribution (see each rule's note).
 */
export type AcceptanceRule = 'greedy' | 'sample-match' | 'rejection';

/** A draft token; `dist` is the distribution the draft sampled it from (rejection only). */
export interface DraftCandidate {
  id: number;
  dist?: readonly TokenProb[];
}

/** The target at one position: its own sample there, and (rejection only) the distribution it sampled from. */
export interface TargetPosition {
  sampled: number;
  dist?: readonly TokenProb[];
}

/** What a round commits. */
export interface Verdict {
  /** Draft tokens accepted (a prefix of the proposal). */
  accepted: number;
  /** The accepted draft tokens followed by one target token (correction or bonus). */
  tokens: number[];
  /** Whether the last token is a bonus (every draft token accepted). */
  bonus: boolean;
  /** Index of the target position each committed token was decided at. */
  positions: number[];
}

function commit(draft: readonly DraftCandidate[], accepted: number, last: number, bonus: boolean): Verdict {
  const tokens = [...draft.slice(0, accepted).map((d) => d.id), last];
  return { accepted, tokens, bonus, positions: tokens.map((_, i) => i) };
}

/**
 * The drafts a target scored `positions` for: all of them, or the leading ones when it scored
 * fewer (a shared verifier's window, or an engine that verified fewer to shape its batch).
 */
export function scoredDrafts<T>(proposal: readonly T[], positions: number): readonly T[] {
  return positions >= proposal.length + 1 ? proposal : proposal.slice(0, Math.max(0, positions - 1));
}

function checkShape(draft: readonly DraftCandidate[], target: readonly TargetPosition[]): void {
  if (target.length !== draft.length + 1) {
    throw new Error(`verification needs k+1 = ${draft.length + 1} target positions, got ${target.length}`);
  }
}

/**
 * Sample-and-match (greedy is its temperature-0 case): accept draft token i while it equals the
 * target's own sample at position i; at the first mismatch commit the target's sample; if all
 * match, commit the target's sample at position k as the bonus. Every committed token *is* a
 * target sample conditioned on the tokens before it, so the output has exactly the target's
 * distribution; no probabilities are needed. Acceptance per token is p(draft token).
 */
export function verifyByMatch(draft: readonly DraftCandidate[], target: readonly TargetPosition[]): Verdict {
  checkShape(draft, target);
  let i = 0;
  while (i < draft.length && (draft[i] as DraftCandidate).id === (target[i] as TargetPosition).sampled) i++;
  return commit(draft, i, (target[i] as TargetPosition).sampled, i === draft.length);
}

function probOf(dist: readonly TokenProb[] | undefined, id: number): number {
  return dist?.find((t) => t.id === id)?.prob ?? 0;
}

/** norm(max(0, p − q)) over the ids either distribution knows; p itself when that is empty. */
export function residual(p: readonly TokenProb[], q: readonly TokenProb[]): TokenProb[] {
  const qById = new Map(q.map((t) => [t.id, t.prob]));
  const out = p
    .map((t) => ({ id: t.id, prob: Math.max(0, t.prob - (qById.get(t.id) ?? 0)) }))
    .filter((t) => t.prob > 0);
  return out.length > 0 ? out : [...p];
}

/**
 * Rejection sampling (Leviathan et al. 2023; Chen et al. 2023): accept draft token x with
 * probability min(1, p(x)/q(x)); on rejection commit a sample of norm(max(0, p − q)); when all k
 * are accepted commit the target's own sample at position k. Exact when p and q are the full
 * distributions actually sampled from (same transform); with top-N lists it is an approximation
 * (mass outside the lists is treated as zero), which callers must declare.
 */
export function verifyByRejection(
  draft: readonly DraftCandidate[],
  target: readonly TargetPosition[],
  rng: Rng,
): Verdict {
  checkShape(draft, target);
  for (let i = 0; i < draft.length; i++) {
    const d = draft[i] as DraftCandidate;
    const t = target[i] as TargetPosition;
    const q = probOf(d.dist, d.id);
    const p = probOf(t.dist, d.id);
    // q = 0 means the draft's list lost its own token: fall back to matching, which is exact.
    const acceptProb = q > 0 ? Math.min(1, p / q) : d.id === t.sampled ? 1 : 0;
    if (rng() < acceptProb) continue;
    const corrected =
      q > 0 && t.dist !== undefined && t.dist.length > 0 ? sampleFrom(residual(t.dist, d.dist ?? []), rng) : t.sampled;
    return commit(draft, i, corrected, false);
  }
  return commit(draft, draft.length, (target[draft.length] as TargetPosition).sampled, true);
}
