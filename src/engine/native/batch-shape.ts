import { countEqualSplitPasses } from './equal-split.js';

/** One generation's part of a batch, as the shaper weighs it. */
export interface ShapedJob {
  seq: number;
  /** Tokens before its drafts (the last committed token, or a prompt). */
  pending: number;
  /** Draft tokens it asks to verify. */
  drafts: number;
  /** Its measured chance that a draft position is accepted, given the ones before it were. */
  acceptance: number;
}

/** What a pass over the weights and a position cost, as the engine measures them. */
export interface PassCost {
  fixedMs: number;
  positionMs: number;
}

/** What one job does in a shaped batch: the drafts it verifies, and filler tokens that even out its length. */
export interface JobShape {
  drafts: number;
  /** Tokens appended after its drafts and thrown away (their KV is erased by its next evaluation). */
  pad: number;
}

/**
 * How each job of a batch is laid out: the shape with the most expected tokens per ms of the
 * batch. Over a KV stream per sequence, llama.cpp passes over the weights once per run of
 * consecutive ids with equal tokens left (equalSplitPasses), so drafts of different lengths, or
 * drafts among generations that decode alone, cost the whole batch extra passes: 16 positions took
 * 40 ms with single tokens and 56 with one generation verifying drafts. Two levers, both lossless:
 * verifying fewer drafts (the target's token at the last position kept is as good a bonus as any;
 * what a stream's step leaves lines up with its next step), and padding a short job with filler
 * positions, which cost a position each instead of a pass.
 *
 * Shapes tried, for each c: every job's drafts capped at c; every job cut to c drafts or none; and
 * every job cut to c or padded up to c. The batch as asked wins ties. Expected tokens of j drafts
 * at acceptance α: 1 + α + … + α^j; filler counts for nothing.
 */
export function shapeBatch(jobs: readonly ShapedJob[], cost: PassCost, maxTokensPerPass: number): JobShape[] {
  const asked = jobs.map((j) => ({ drafts: j.drafts, pad: 0 }));
  const most = Math.max(0, ...jobs.map((j) => j.drafts));
  if (jobs.length < 2 || most === 0 || cost.fixedMs <= 0) return asked;
  let best = asked;
  let bestRate = rate(jobs, asked, cost, maxTokensPerPass);
  for (let c = 0; c <= most; c++) {
    for (const shape of candidates(jobs, c)) {
      const r = rate(jobs, shape, cost, maxTokensPerPass);
      if (r > bestRate * 1.000001) {
        best = shape;
        bestRate = r;
      }
    }
  }
  return best;
}

/** The shapes tried at c drafts (see shapeBatch). */
function candidates(jobs: readonly ShapedJob[], c: number): JobShape[][] {
  const capped = jobs.map((j) => ({ drafts: Math.min(j.drafts, c), pad: 0 }));
  const evenOrNone = jobs.map((j) => ({ drafts: j.drafts >= c ? c : 0, pad: 0 }));
  // Padding evens out the drafting jobs: a prompt being prefilled is longer than any of them.
  const padded = jobs.map((j) => {
    const drafts = Math.min(j.drafts, c);
    return { drafts, pad: j.pending === 1 ? c - drafts : 0 };
  });
  return [capped, evenOrNone, padded];
}

/** Expected tokens per ms of a batch laid out as `shape`. */
function rate(
  jobs: readonly ShapedJob[],
  shape: readonly JobShape[],
  cost: PassCost,
  maxTokensPerPass: number,
): number {
  let tokens = 0;
  let positions = 0;
  const seq: number[] = [];
  const left: number[] = [];
  for (const [i, job] of jobs.entries()) {
    const { drafts = 0, pad = 0 } = shape[i] ?? {};
    tokens += expectedTokens(job.acceptance, drafts);
    positions += job.pending + drafts + pad;
    seq.push(job.seq);
    left.push(job.pending + drafts + pad);
  }
  const passes = countEqualSplitPasses(seq, left, maxTokensPerPass);
  return tokens / (passes * cost.fixedMs + positions * cost.positionMs);
}

/** 1 + α + … + α^j: the tokens j drafts are expected to commit, the bonus included. */
function expectedTokens(alpha: number, j: number): number {
  let sum = 1;
  let term = 1;
  for (let i = 0; i < j; i++) {
    term *= alpha;
    sum += term;
  }
  return sum;
}
