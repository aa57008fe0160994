/** One sequence's share of a batch: its KV stream (sequence id) and how many tokens it appends. */
export interface BatchShare {
  seq: number;
  tokens: number;
}

/**
 * The passes over the weights (ubatches) llama.cpp makes of one batch when every sequence has a KV
 * stream of its own (`kv_unified = false`): its equal split takes, into each ubatch, a run of
 * consecutive sequence ids in batch order and the same number of tokens from each, the fewest any
 * of them has left. So one generation verifying drafts among others decoding one token alone costs
 * the batch a second pass, and a gap in the ids (or ids out of order) splits even single tokens.
 * Mirrors `llama_batch_allocr::split_equal(n_ubatch, sequential = true)`; returns the tokens of
 * each pass.
 */
export function equalSplitPasses(shares: readonly BatchShare[], maxTokensPerPass: number): number[] {
  const passes: number[] = [];
  countEqualSplitPasses(
    shares.map((s) => s.seq),
    shares.map((s) => s.tokens),
    maxTokensPerPass,
    (tokens) => passes.push(tokens),
  );
  return passes;
}

/**
 * equalSplitPasses without allocating (the batch shaper counts the passes of dozens of layouts a
 * batch): `left` is consumed. Returns the number of passes; `onPass` sees each pass's tokens.
 */
export function countEqualSplitPasses(
  seq: readonly number[],
  left: number[],
  maxTokensPerPass: number,
  onPass?: (tokens: number) => void,
): number {
  let passes = 0;
  for (;;) {
    // The run one ubatch takes: the first share with tokens left, then each next one whose id follows.
    let size = 0;
    let fewest = Number.POSITIVE_INFINITY;
    let last = -1;
    for (let i = 0; i < left.length; i++) {
      const l = left[i] ?? 0;
      if (l <= 0 || (size > 0 && seq[i] !== last + 1)) continue;
      size += 1;
      last = seq[i] ?? -1;
      if (l < fewest) fewest = l;
    }
    if (size === 0) return passes;
    const each = Math.max(1, Math.min(fewest, Math.floor(maxTokensPerPass / size)));
    last = -1;
    let taken = 0;
    for (let i = 0; i < left.length && taken < size; i++) {
      const l = left[i] ?? 0;
      if (l <= 0 || (taken > 0 && seq[i] !== last + 1)) continue;
      left[i] = l - each;
      last = seq[i] ?? -1;
      taken += 1;
    }
    passes += 1;
    onPass?.(each * size);
  }
}
