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
  const left = shares.map((s) => s.tokens);
  const passes: number[] = [];
  for (;;) {
    const run = nextRun(shares, left);
    if (run.length === 0) return passes;
    const fewest = Math.min(...run.map((i) => left[i] ?? 0));
    const each = Math.max(1, Math.min(fewest, Math.floor(maxTokensPerPass / run.length)));
    for (const i of run) left[i] = (left[i] ?? 0) - each;
    passes.push(each * run.length);
  }
}

/** The shares one ubatch takes: the first with tokens left, then each next one whose id follows. */
function nextRun(shares: readonly BatchShare[], left: readonly number[]): number[] {
  const run: number[] = [];
  let last = -1;
  shares.forEach((s, i) => {
    if ((left[i] ?? 0) <= 0) return;
    if (run.length > 0 && s.seq !== last + 1) return;
    run.push(i);
    last = s.seq;
  });
  return run;
}
