/** What chainHitMs needs: the hit probability h, the next proposal's draft time δ, verify time V, depth d. */
export interface ChainCosts {
  hit: number;
  nextDraftMs: number;
  verifyMs: number;
  depth: number;
}

/**
 * Expected time per round that comes from hits (the h part of the round cost). A round whose
 * predecessor hit was sent early: the first d rounds of a chain wait one draft time δ after the
 * previous verdict (they were sent one draft time apart), and every (d+1)-th waits out what is
 * left of a verification, V − (d+1)·δ. Chains end at a miss, so with geometric chain lengths
 *
 *   hitMs = h·δ + max(0, V − (d+1)·δ) · (1 − h)·h^{d+1} / (1 − h^{d+1})
 *
 * which is h·max(δ, V) at d = 0 (drafted ahead, sent after the verdict) and tends to
 * max(δ, V/(d+1)) per round for long chains (h → 1), the pipeline's throughput bound.
 */
export function chainHitMs(c: ChainCosts): number {
  const { hit: h, nextDraftMs: delta, verifyMs: v, depth: d } = c;
  const tail = Math.max(0, v - (d + 1) * delta);
  const share = h >= 1 - 1e-9 ? 1 / (d + 1) : ((1 - h) * h ** (d + 1)) / (1 - h ** (d + 1));
  return h * delta + tail * share;
}
