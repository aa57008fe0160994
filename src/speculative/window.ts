/** Bounds on the window (draft tokens per round). */
export interface WindowBounds {
  min: number;
  max: number;
}

/** Clamps a requested window to the configured bounds. */
export function clampWindow(k: number, bounds: WindowBounds): number {
  return Math.max(bounds.min, Math.min(bounds.max, Math.floor(k)));
}

/**
 * k actually used in a round: the planner's choice, capped so the round cannot overshoot the
 * tokens still allowed (a round commits up to k+1) and the target can score k+1 prompts in one batch.
 */
export function roundWindow(plannedK: number, remainingTokens: number, maxPositions: number): number {
  return Math.max(0, Math.min(plannedK, remainingTokens - 1, maxPositions - 1));
}
