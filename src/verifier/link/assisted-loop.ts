import type { GeneratedToken } from '../../speculative/types.js';
import type { EngineSequence, PositionSampling } from '../engine/types.js';
import { matchVerdict, scoreDrafts } from '../engine-server.js';

/** A proposal from the edge: draft tokens for the context positions from `at` on. */
export interface Proposal {
  at: number;
  d: number[];
}

/**
 * The draft tokens of a proposal still ahead of a context of `ctx.length` tokens, when the ones it
 * already passed equal what the target committed there; undefined when it is stale or refuted.
 */
export function alignedTail(p: Proposal, ctx: readonly number[]): number[] | undefined {
  const passed = ctx.length - p.at;
  if (passed < 0 || passed >= p.d.length) return undefined;
  for (let i = 0; i < passed; i++) if (p.d[i] !== ctx[p.at + i]) return undefined;
  return p.d.slice(passed);
}

/** One step of the loop: the tokens it committed and the proposal it used. */
export interface AssistedStep {
  tokens: GeneratedToken[];
  drafted: number;
  accepted: number;
  /** Draft tokens of a proposal that lined up but were not worth the shared target's time. */
  declined: number;
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
  return {
    tokens: scored.slice(0, verdict.accepted + 1),
    drafted: drafts.length,
    accepted: verdict.accepted,
    declined: 0,
  };
}

/** Where the loop's proposals arrive: the newest one, and a hook that wakes a waiting step. */
export interface ProposalInbox {
  proposal?: Proposal | undefined;
  arrived?: (() => void) | undefined;
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
 * sooner than an evaluation's fixed cost, the part of a step that decoding alone first wastes:
 * waiting w then verifying k tokens costs w + V(k+1), decoding alone first costs t1 + V(k), and
 * V(k+1) − V(k) is the per-token part of t1 (so: wait when w < t1 − per-token cost).
 */
export async function serveAssisted(o: AssistedOptions): Promise<void> {
  const { ctx, inbox } = o;
  let produced = 0;
  let sentAt = Date.now();
  let turnaroundMs: number | undefined;
  const usable = () => (inbox.proposal === undefined ? undefined : alignedTail(inbox.proposal, ctx));
  while (produced < o.maxTokens && !o.signal.aborted) {
    let tail = usable();
    if (tail === undefined && turnaroundMs !== undefined) {
      const due = turnaroundMs - (Date.now() - sentAt);
      if (due > 0 && due < o.fixedMs()) {
        await proposalOrTimeout(inbox, due + 1);
        tail = usable();
      }
    }
    if (tail !== undefined) {
      if (inbox.proposal?.at === ctx.length) {
        const t = Date.now() - sentAt;
        turnaroundMs = turnaroundMs === undefined ? t : 0.7 * turnaroundMs + 0.3 * t;
      }
      inbox.proposal = undefined;
    }
    let declined = 0;
    if (tail !== undefined && o.worthVerifying !== undefined) {
      const worth = o.worthVerifying(tail);
      declined = tail.length - worth.length;
      tail = [...worth];
    }
    const step = { ...(await assistedStep(o.seq, ctx, tail, o.sampling)), declined };
    const tokens = step.tokens.slice(0, o.maxTokens - produced);
    const end = tokens.findIndex((t) => t.endOfGeneration === true);
    if (end >= 0) tokens.length = end + 1;
    if (tokens.length === 0) break;
    for (const t of tokens) ctx.push(t.id);
    produced += tokens.length;
    o.emit(tokens, step);
    sentAt = Date.now();
    if (end >= 0) break;
  }
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
