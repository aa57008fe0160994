import { DecayingMean } from './decaying-stats.js';
import { branchPoints } from './draft-tree.js';
import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

/** A round on its way to the target, as branch-ahead needs it. */
export interface BranchRound {
  /** The context the round's drafts continue. */
  ctx: readonly number[];
  /** Its drafts, with the draft's runner-up at each position (`top`) when they were asked for. */
  proposal: readonly GeneratedToken[];
  /** What drafting the proposal took. */
  draftWorkMs: number;
  sentAt: number;
  /** Settles when the verdict is back, with when it came (a failure: undefined). */
  doneAt: Promise<number | undefined>;
}

/** A draft's tokens and what drafting them took; undefined when the draft failed. */
type Drafted = Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined>;

/** Drafts `n` tokens after `base`, with runner-ups (draft-ahead's own timed, abortable call). */
export type BranchDrafter = (base: number[], n: number) => Drafted;

/** A branch's next proposal in the making: the context after a rejection there, and its drafts. */
interface Branch {
  base: number[];
  drafted: Drafted;
}

/**
 * The branches of a tree, for rounds: while the target verifies a round, the draft also drafts
 * from where a rejection is likeliest (the positions it was least sure of, with its runner-up
 * there), so the round after such a rejection has its proposal at once instead of waiting k draft
 * steps. Draft-ahead covers the round whose drafts are all accepted; a branch covers a rejection
 * whose correction is the draft's runner-up. Branches go only where the draft can make them while
 * the target verifies: the draft's time per token (measured) for draft-ahead's k + 1 and each
 * branch's k must fit in a verification (measured), so a draft already saturated (under load, or
 * slow beside a fast target) makes none.
 */
export class BranchAhead {
  private branches: Branch[] = [];
  private readonly draftMsPerToken = new DecayingMean(0.8);
  private readonly verifyMs = new DecayingMean(0.8);

  constructor(private readonly stats: SpeculationStats) {}

  /** How many branches fit beside draft-ahead's k + 1 drafts in one verification, up to `budget`. */
  affordable(k: number, budget: number): number {
    const perToken = this.draftMsPerToken.value;
    const verify = this.verifyMs.value;
    if (perToken === undefined || verify === undefined || perToken <= 0 || k <= 0) return 0;
    return Math.max(0, Math.min(budget, Math.floor((verify / perToken - (k + 1)) / k)));
  }

  /** Drafts the branches a round's verdict may need, k drafts each, while it is verified. */
  start(draft: BranchDrafter, round: BranchRound, k: number, budget: number): void {
    this.branches = [];
    if (round.proposal.length > 0) this.draftMsPerToken.add(round.draftWorkMs / round.proposal.length);
    void round.doneAt.then((at) => {
      if (at !== undefined) this.verifyMs.add(at - round.sentAt);
    });
    const ids = round.proposal.map((t) => t.id);
    for (const { from, alternative } of branchPoints(round.proposal, this.affordable(k, budget))) {
      const base = [...round.ctx, ...ids.slice(0, from), alternative];
      // Every draft the branches make also measures the draft's time per token.
      const drafted = draft(base, k).then((d) => {
        if (d !== undefined && d.tokens.length > 0) this.draftMsPerToken.add(d.workMs / d.tokens.length);
        return d;
      });
      this.branches.push({ base, drafted });
    }
    this.stats.treeBranches += this.branches.length;
  }

  /** The proposal a branch drafted for `ctx` (waiting for it if it is still running), if one did. */
  async take(ctx: readonly number[], k: number): Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined> {
    const branch = this.branches.find((b) => b.base.length === ctx.length && b.base.every((id, i) => id === ctx[i]));
    this.branches = [];
    const ready = await branch?.drafted;
    if (ready === undefined || ready.tokens.length === 0) return undefined;
    this.stats.treeBranchSteps += 1;
    return { tokens: ready.tokens.slice(0, k), workMs: ready.workMs };
  }

  /** Forgets the branches (their requests finish on their own: aborting one costs a connection). */
  clear(): void {
    this.branches = [];
  }
}
