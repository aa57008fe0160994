import { alignedPath, draftBranches, type ProposalTree } from './draft-tree.js';
import type { AssistedStream, DraftSlot, EngineOptions } from './engine-types.js';
import type { GenerationState } from './generation-state.js';
import type { GeneratedToken } from './types.js';

/** Tokens to draft beyond `k`: what the target makes while a proposal is on its way (FACTS, lesson 2). */
export function proposalLength(k: number, tokensPerTurnaround: number, cap: number): number {
  return Math.max(1, Math.min(cap, k + Math.ceil(tokensPerTurnaround)));
}

/** What the stream's drafter works with. */
export interface StreamDrafterOptions {
  o: EngineOptions;
  draft: DraftSlot;
  stream: AssistedStream;
  state: GenerationState;
  signal: AbortSignal;
}

/** The edge's half of the never-waiting stream: one proposal in the making at a time. */
export interface StreamDrafter {
  /** Drafts a proposal of `k` verifiable drafts from the newest context, unless one is in the making. */
  draftFrom(k: number): void;
}

/**
 * Drafts the stream's proposals. The chain goes out as soon as it is drafted; its tree's branches
 * follow in a frame of their own (no chain: the verifier joins them to it), drafted while the
 * next chain is. A proposal must also have guessed every token the target made before it arrived, so
 * a tree that waited for its branches (a second draft request) would arrive staler, and lose more
 * alignment than its branches buy (measured: trees no faster than chains across 10 ms).
 */
export function createStreamDrafter(x: StreamDrafterOptions): StreamDrafter {
  const { o, draft, stream, state, signal } = x;
  let drafting = false;
  let branching = false;
  let alive = true;
  let tokensPerTurnaround = 0;
  let draftMsPerProposal = 0;
  const chainOf = (ctx: readonly number[], m: number, alternatives: boolean) =>
    draft.port.propose(ctx, m, signal, alternatives ? 2 : 0);
  const invalid = (ids: readonly number[]) => {
    if (ids.every((id) => o.isValidDraftToken(id))) return false;
    alive = false;
    o.stats.fallbackReason = `draft ${draft.name} returned a token id outside the vocabulary`;
    return true;
  };
  // Sent only while some path of it still lines up with what the target committed meanwhile; a
  // tree's branches without its chain, which went first (the verifier joins them to it).
  const send = (tree: ProposalTree, k: number) => {
    if (tree.main.length === 0 || alignedPath(tree, state.ctx) === undefined) return;
    o.stats.treeBranches += tree.branches.length;
    stream.propose(tree.at, tree.branches.length > 0 ? [] : tree.main, tree.branches, k);
  };
  const branchOff = (ctx: readonly number[], chain: GeneratedToken[], k: number, budget: number, within: number) => {
    branching = true;
    const started = o.now();
    void draftBranches(chainOf, ctx, chain, budget, within).then((branches) => {
      branching = false;
      o.stats.draftMs += o.now() - started;
      if (!alive || signal.aborted || branches.length === 0 || invalid(branches.flatMap((b) => b.tokens))) return;
      send({ at: ctx.length, main: chain.map((t) => t.id), branches }, k);
    });
  };
  const draftFrom = (k: number) => {
    // A draft whose every slot is busy would queue this proposal behind other generations' and
    // deliver it stale: the target goes on alone, and the next step tries again (draft admission).
    if (drafting || !alive || state.remaining <= 1 || draft.port.saturated?.() === true) return;
    drafting = true;
    const ctx = state.ctx.slice();
    const started = o.now();
    // The target also moves while the draft works: a proposal is that much further behind on arrival.
    const pace = stream.paceMs?.();
    const link = stream.lead?.();
    const lead =
      link === undefined
        ? tokensPerTurnaround
        : link + (pace === undefined || pace <= 0 ? 0 : draftMsPerProposal / pace);
    // k verifiable on arrival. Two windows were tried (after a step that took all k, the next goes
    // on along the same proposal): 1.17× → 1.25× across 10 ms in one run, at twice the link bytes.
    const n = proposalLength(k, lead, Math.min(o.maxPositions() - 1, state.remaining));
    // Branches pay where the target moves while a proposal travels (a rejection would cost a round
    // trip); next to the target a branch would only be a second draft request. One tree's branches
    // in the making at a time, so the draft is never asked for more than a chain and one tree.
    const budget = (link ?? 0) >= 1 && !branching ? (o.treeBranches ?? 0) : 0;
    chainOf(ctx, n, budget > 0).then(
      (chain) => {
        drafting = false;
        const ms = o.now() - started;
        o.stats.draftMs += ms;
        draftMsPerProposal = draftMsPerProposal === 0 ? ms : 0.7 * draftMsPerProposal + 0.3 * ms;
        const main = chain.map((t) => t.id);
        if (invalid(main)) return;
        // How far the target moved while this proposal was made: the next one drafts that much further.
        tokensPerTurnaround = 0.7 * tokensPerTurnaround + 0.3 * (state.ctx.length - ctx.length);
        send({ at: ctx.length, main, branches: [] }, k);
        // A miss among the tokens the target makes before the proposal arrives refutes all of it; one
        // further on only ends a verification early. So the branches go where the target will be
        // when it arrives: the lead, and the first position it verifies.
        if (budget > 0 && main.length > 1) branchOff(ctx, chain, k, budget, Math.ceil(lead) + 1);
      },
      (err: unknown) => {
        drafting = false;
        if (signal.aborted) return;
        alive = false;
        o.stats.fallbackReason = `draft ${draft.name} failed: ${(err as Error)?.message ?? String(err)}`;
        o.onDraftFailure?.(draft, o.stats.fallbackReason, err);
      },
    );
  };
  return { draftFrom };
}
