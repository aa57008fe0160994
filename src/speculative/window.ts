/** Bounds on the window (draft tokens per round). */
export interface WindowBounds {
  min: number;
  max: number;
}

/** A policy choosing k for the next round. */
export interface WindowPolicy {
  /** k for the next round, before capping by the tokens still allowed and the target's batch size. */
  next(): number;
}

/** Clamps a requested window to the configured bounds. */
export function clampWindow(k: number, bounds: WindowBounds): number {
  return Math.max(bounds.min, Math.min(bounds.max, Math.floor(k)));
}

/** The same k every round. */
export function fixedWindow(k: number): WindowPolicy {
  return { next: () => k };
}

/**
 * k actually used in a round: the policy's choice, capped so the round cannot overshoot the
 * tokens still allowed (a round commits up to k+1) and the target can score k+1 prompts in one batch.
 */
export function roundWindow(policyK: number, remainingTokens: number, maxPositions: number): number {
  return Math.max(0, Math.min(policyK, remainingTokens - 1, maxPositions - 1));
}
