import { matchVerdict, scoreDrafts } from '../../engine/engine-server.js';
import type { EngineSequence, PositionSampling } from '../../engine/types.js';
import { bestAlignedPath } from '../../speculative/draft-tree.js';
import type { GeneratedToken } from '../../speculative/types.js';
import { ProposalTiming } from './proposal-timing.js';

/** A proposal from the edge: draft tokens for the context positions from `at` on, and a tree's branches. */
export interface Proposal {
  at: number;
  d: number[];
  /** Branches off `d`: [index where it leaves the chain, its tokens]. */
  b?: [number, number[]][] | undefined;
  /** The most of its drafts one step verifies (the edge's window); the rest wait for the next step. */
  w?: number | undefined;
  /** As it crossed: it continues the newest chain, whose `e` tokens before `at` come first (deliver joins them). */
  e?: number | undefined;
}

/**
 * The draft tokens of a proposal still ahead of a context of `ctx.length` tokens, on the path
 * (the chain, or a branch) whose tokens it already passed equal what the target committed there,
 * and whether that path is a branch; undefined when it is stale or refuted.
 */
export function alignedTail(p: Proposal, ctx: readonly number[]): { tail: number[]; branch: boolean } | undefined {
  const branches = (p.b ?? []).map(([from, tokens]) => ({ from, tokens }));
  return bestAlignedPath({ at: p.at, main: p.d, branches }, ctx);
}

/** One step of the loop: the tokens it committed and the proposal it used. */
export interface AssistedStep {
  tokens: GeneratedToken[];
  drafted: number;
  accepted: number;
  /** Draft tokens of a proposal that lined up but were not worth the shared target's time. */
  declined: number;
  /** The drafts were a tree's branch (the target's correction, continued). */
  branch?: boolean;
}

/**
 * One step of the target that never waits: verify the proposal that lines up with the context
 * (one evaluation of its tail, the match rule of a round), or decode one token alone.
 */
export async function assistedStep(
  seq: EngineSequence,
  ctx: readonly number[],
  tail: readonly number[] | undefined,
  s: PositionSampling,
): Promise<AssistedStep> {
  const drafts = tail ?? [];
  const scored = await scoreDrafts(seq, ctx, drafts, s);
  const verdict = matchVerdict(drafts, scored);
  // An engine that shapes its batches may have verified fewer: those are declined for this step.
  const verified = Math.min(drafts.length, scored.length - 1);
  return {
    tokens: scored.slice(0, verdict.accepted + 1),
    drafted: verified,
    accepted: verdict.accepted,
    declined: drafts.length - verified,
  };
}

/**
 * Proposals a stream keeps: across a link a newer one was drafted from an older context than the
 * target has now, and an earlier tree's branch may be what lines up after a rejection.
 */
export const PROPOSALS_KEPT = 4;

/**
 * Adds a proposal to an inbox, dropping the oldest beyond PROPOSALS_KEPT, and wakes a waiting step.
 * The edge sends a chain as soon as it is drafted and its tree's branches when they are, as a
 * proposal with no chain of its own from the same position: those join the chain (if it is still
 * kept; branches that leave past its end are dropped). A chain that continues the newest one
 * crossed with its new tokens only: it is joined to the ones it repeats, at most `maxDraft` long.
 * Returns how many drafts it took from the chain before (0 for any other proposal).
 */
export function deliver(inbox: ProposalInbox, p: Proposal, maxDraft = Number.POSITIVE_INFINITY): number {
  if (p.d.length === 0) {
    const i = inbox.proposals.findLastIndex((q) => q.at === p.at && q.d.length > 0);
    const chain = inbox.proposals[i];
    if (chain === undefined || p.b === undefined) return 0;
    inbox.proposals[i] = { ...chain, b: p.b.filter(([from]) => from < chain.d.length) };
    inbox.arrived?.();
    return 0;
  }
  const chain = p.e === undefined ? p : continued(inbox, p, maxDraft);
  inbox.observe?.(chain);
  inbox.proposals.push(chain);
  if (inbox.proposals.length > PROPOSALS_KEPT) inbox.proposals.shift();
  inbox.arrived?.();
  return p.at - chain.at;
}

/**
 * A continued chain joined to the `e` tokens of the newest chain before it; its new tokens alone
 * (what they are: drafts from `at` on) when the newest chain does not hold those positions, as
 * after a chain the stream dropped.
 */
function continued(inbox: ProposalInbox, p: Proposal, maxDraft: number): Proposal {
  const { e = 0, ...own } = p;
  const newest = inbox.proposals.findLast((q) => q.d.length > 0);
  const from = p.at - e;
  if (newest === undefined || from < newest.at || p.at > newest.at + newest.d.length) return own;
  const d = [...newest.d.slice(from - newest.at, p.at - newest.at), ...p.d].slice(0, maxDraft);
  const b = own.b?.filter(([at]) => at < d.length);
  return { ...own, at: from, d, ...(b === undefined ? {} : { b }) };
}

/** The proposal in the inbox with the most drafts ahead of `ctx` on a path that lines up, and that path. */
function bestAligned(
  inbox: ProposalInbox,
  ctx: readonly number[],
): { proposal: Proposal; tail: number[]; branch: boolean } | undefined {
  let best: { proposal: Proposal; tail: number[]; branch: boolean } | undefined;
  for (const proposal of inbox.proposals) {
    const a = alignedTail(proposal, ctx);
    if (a !== undefined && (best === undefined || a.tail.length >= best.tail.length)) best = { proposal, ...a };
  }
  return best;
}

/** Where the loop's proposals arrive: the newest one, and a hook that wakes a waiting step. */
export interface ProposalInbox {
  /** The newest proposals, oldest first (at most PROPOSALS_KEPT). */
  proposals: Proposal[];
  arrived?: (() => void) | undefined;
  /** Sees each new proposal as it arrives (the stream times them; a tree following its chain is not new). */
  observe?: ((p: Proposal) => void) | undefined;
}

/** What one assisted stream works with. */
export interface AssistedOptions {
  seq: EngineSequence;
  /** The session's context; the loop appends what it commits. */
  ctx: number[];
  sampling: PositionSampling;
  maxTokens: number;
  inbox: ProposalInbox;
  signal: AbortSignal;
  /**
   * The part of an evaluation that does not grow with its tokens (what decoding alone first
   * wastes): the engine's own batch-cost model, the one draftsWorthVerifying prices with.
   */
  fixedMs: () => number;
  /** The leading drafts of a proposal worth verifying now (all of them when the target is not shared). */
  worthVerifying?: (drafts: readonly number[]) => readonly number[];
  /** Sends the tokens a step committed. */
  emit: (tokens: GeneratedToken[], step: AssistedStep) => void;
}

/**
 * The target that never waits for the network. Each step verifies the newest proposal that lines
 * up with the context, or decodes alone. With no proposal in hand it waits only while one is due
 * sooner than an evaluation's fixed cost, the part of a step that decoding alone first wastes,
 * times the chance that it lines up: waiting w then verifying k tokens costs w + V(k+1), decoding
 * alone first costs t1 + V(k), and V(k+1) − V(k) is the per-token part of t1 (so: wait when
 * w < t1 − per-token cost); a proposal that does not line up wastes the wait.
 */
export async function serveAssisted(o: AssistedOptions): Promise<void> {
  const { ctx, inbox } = o;
  let produced = 0;
  const timing = new ProposalTiming();
  timing.sent(ctx.length, performance.now());
  inbox.observe = (p) => timing.arrived(p.at, performance.now(), alignedTail(p, ctx) !== undefined);
  // A proposal stays in the inbox after a step used it: a tree's branch that starts with this
  // step's correction, or drafts a shared target declined for now, line up with the next step.
  const usable = () => bestAligned(inbox, ctx);
  while (produced < o.maxTokens && !o.signal.aborted) {
    let aligned = usable();
    if (aligned === undefined) {
      const due = timing.dueMs(ctx.length, performance.now());
      if (due !== undefined && due < timing.alignedShare() * o.fixedMs()) {
        await proposalOrTimeout(inbox, due + 1);
        aligned = usable();
      }
    }
    const { tail, declined } = stepDrafts(aligned, o.worthVerifying);
    const branch = aligned?.branch === true && (tail?.length ?? 0) > 0;
    const done = await assistedStep(o.seq, ctx, tail, o.sampling);
    const step = { ...done, declined: declined + done.declined, branch };
    const tokens = step.tokens.slice(0, o.maxTokens - produced);
    const end = tokens.findIndex((t) => t.endOfGeneration === true);
    if (end >= 0) tokens.length = end + 1;
    if (tokens.length === 0) break;
    for (const t of tokens) ctx.push(t.id);
    produced += tokens.length;
    o.emit(tokens, step);
    timing.sent(ctx.length, performance.now());
    if (end >= 0) break;
  }
  inbox.observe = undefined;
}

/** The drafts one step verifies: the aligned path's first `w`, then what a shared target finds worth it. */
function stepDrafts(
  aligned: { proposal: Proposal; tail: number[] } | undefined,
  worthVerifying: AssistedOptions['worthVerifying'],
): { tail: readonly number[] | undefined; declined: number } {
  if (aligned === undefined) return { tail: undefined, declined: 0 };
  const w = aligned.proposal.w;
  const window = w !== undefined && aligned.tail.length > w ? aligned.tail.slice(0, w) : aligned.tail;
  if (worthVerifying === undefined) return { tail: window, declined: 0 };
  const worth = worthVerifying(window);
  return { tail: worth, declined: window.length - worth.length };
}

function proposalOrTimeout(inbox: ProposalInbox, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      inbox.arrived = undefined;
      resolve();
    }
    inbox.arrived = done;
  });
}
