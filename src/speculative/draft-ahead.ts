import { BranchAhead } from './branch-ahead.js';
import type { DraftPort, TargetPort } from './engine-types.js';
import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

/** How a verification request ended; never a rejected promise, so dropped rounds cannot go unhandled. */
export type Scored = { kind: 'ok'; positions: GeneratedToken[]; doneAt: number } | { kind: 'failed'; err: unknown };

/** A round whose proposal is made and whose k+1 positions were sent to the target. */
export interface SentRound {
  /** The context the round's draft tokens continue. */
  ctx: number[];
  proposal: GeneratedToken[];
  /** Full draft request time (hidden when the round was drafted ahead). */
  draftWorkMs: number;
  sentAt: number;
  scoring: Promise<Scored>;
  /** Set when sent before the previous round's verdict: the chain depth allowed then. */
  early: { depth: number } | undefined;
}

/** Sends a round's k+1 prompts (ctx, ctx+d1, …, ctx+d1..dk) to the target in one batch. */
export function sendRound(
  target: TargetPort,
  r: Omit<SentRound, 'scoring' | 'sentAt'>,
  now: () => number,
  signal: AbortSignal,
): SentRound {
  const prompts = [r.ctx.slice()];
  for (const t of r.proposal) prompts.push([...(prompts[prompts.length - 1] as number[]), t.id]);
  const sentAt = now();
  const scoring = target.score(prompts, signal).then(
    (positions): Scored => ({ kind: 'ok', positions, doneAt: now() }),
    (err: unknown): Scored => ({ kind: 'failed', err }),
  );
  return { ...r, sentAt, scoring };
}

/** One link of the optimistic chain: a proposal drafted from the end of the round before it. */
interface Link {
  /** The previous round's context plus all its draft tokens. */
  base: number[];
  drafted: Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined>;
  /** The round to send, once drafted and fit to send (a valid guess and proposal). */
  ready?: Omit<SentRound, 'scoring' | 'sentAt'>;
  /** Set when the link's round was sent for verification early. */
  round?: SentRound;
}

/** Limits of the optimistic chain, asked each time it grows. */
export interface AheadLimits {
  /** Rounds sent for verification ahead of the one being verified (0: draft ahead only). */
  depth: number;
  /** Target positions one generation may have in flight at once (llama.cpp slots). */
  maxPositions: () => number;
  /** Longest context the generation may still reach (maxTokens, context size). */
  maxCtxLength: number;
  isEnd: (t: GeneratedToken) => boolean;
  /** Draft output the target must never see (ids outside the vocabulary) stops the chain. */
  isValid: (id: number) => boolean;
  /** Most branches to draft beside the chain (BranchAhead), where rounds are not sent early. */
  branches?: number;
  /** Runner-ups to ask the draft for with each token (what branches are made of). */
  alternatives?: number;
}

/** What draft-ahead has ready for a context: a round already sent, a proposal, or nothing. */
export type AheadResult =
  | { kind: 'sent'; round: SentRound }
  | { kind: 'drafted'; tokens: GeneratedToken[]; workMs: number }
  | undefined;

/**
 * Draft-ahead overlap. While the target verifies round r, the draft continues from the optimistic
 * context (all of round r accepted); its first token is its guess for the bonus token, the rest is
 * round r+1's proposal. With `depth` ≥ 1 that proposal is sent for verification at once, without
 * waiting for round r's verdict, and the chain grows up to `depth` rounds ahead: on a distant
 * target, rounds then arrive one draft time apart instead of one round trip apart. When a verdict
 * goes elsewhere (a rejection, or a bonus unlike the guess), the rest of the chain is dropped.
 */
export class DraftAhead {
  private links: Link[] = [];
  private epoch = 0;
  /** The epoch whose chain a grow loop is extending, if one is running. */
  private growing: number | undefined;
  private readonly controllers = new Set<AbortController>();
  private readonly branches: BranchAhead;

  constructor(
    private readonly deps: { now: () => number; stats: SpeculationStats; target: TargetPort; signal: AbortSignal },
  ) {
    this.branches = new BranchAhead(deps.stats);
  }

  /**
   * Grows the chain after `from` (a round just sent) with windows of k, in the background. The
   * chain holds up to `depth` rounds sent early plus one drafted round waiting for room, which is
   * sent the moment a verdict makes room: a slot never waits for the draft.
   */
  extend(draft: DraftPort, from: SentRound, k: number, limits: AheadLimits): void {
    if (limits.depth === 0 && (limits.branches ?? 0) > 0) this.branchOff(draft, from, k, limits.branches ?? 0);
    if (this.growing === this.epoch) return; // the running loop sees the room the engine just made
    const last = this.links[this.links.length - 1];
    if (last !== undefined && last.round === undefined && !(last.ready !== undefined && this.trySend(last, limits)))
      return;
    const epoch = this.epoch;
    this.growing = epoch;
    void this.grow(epoch, draft, last?.round ?? from, k, limits);
  }

  private async grow(epoch: number, draft: DraftPort, from: SentRound, k: number, limits: AheadLimits): Promise<void> {
    try {
      let tail = from;
      for (;;) {
        if (epoch !== this.epoch || this.links.length >= limits.depth + 1) return;
        if (tail.proposal.length < k || tail.proposal.some(limits.isEnd)) return; // the draft ended its text
        const base = [...tail.ctx, ...tail.proposal.map((t) => t.id)];
        if (base.length + 1 >= limits.maxCtxLength) return;
        const link: Link = { base, drafted: this.draftFrom(draft, base, k + 1, limits.alternatives ?? 0) };
        this.links.push(link);
        const d = await link.drafted;
        const guess = d?.tokens[0];
        if (
          epoch !== this.epoch ||
          d === undefined ||
          guess === undefined ||
          d.tokens.length < 2 ||
          limits.isEnd(guess) ||
          !d.tokens.every((t) => limits.isValid(t.id))
        )
          return;
        const proposal = d.tokens.slice(1, 1 + Math.min(k, limits.maxCtxLength - base.length - 2));
        if (proposal.length === 0) return;
        link.ready = { ctx: [...base, guess.id], proposal, draftWorkMs: d.workMs, early: { depth: limits.depth } };
        if (!this.trySend(link, limits)) return;
        tail = link.round as SentRound;
      }
    } finally {
      // Runs as the loop returns (same tick), so an extend() right after sees no loop running.
      if (this.growing === epoch) this.growing = undefined;
    }
  }

  /** Sends a drafted link's round if the chain has room for it (depth, and the target positions). */
  private trySend(link: Link, limits: AheadLimits): boolean {
    const r = link.ready;
    if (r === undefined || limits.depth === 0) return false;
    const inFlight = 1 + this.links.filter((l) => l.round !== undefined).length;
    if (inFlight > limits.depth || (inFlight + 1) * (r.proposal.length + 1) > limits.maxPositions()) return false;
    const controller = this.track(new AbortController());
    link.round = sendRound(this.deps.target, r, this.deps.now, controller.signal);
    void link.round.scoring.finally(() => this.controllers.delete(controller));
    this.deps.stats.earlyVerifications += 1;
    return true;
  }

  /** The round's branches, drafted while it is verified (the verdict that needs one takes it). */
  private branchOff(draft: DraftPort, from: SentRound, k: number, budget: number): void {
    const doneAt = from.scoring.then((s) => (s.kind === 'ok' ? s.doneAt : undefined));
    // With runner-ups: a branch's drafts are the next round's proposal, which may branch too.
    this.branches.start((base, n) => this.draftFrom(draft, base, n, 2), { ...from, doneAt }, k, budget);
  }

  private draftFrom(draft: DraftPort, base: number[], n: number, alternatives: number): Link['drafted'] {
    const controller = this.track(new AbortController());
    const started = this.deps.now();
    return draft
      .propose(base, n, controller.signal, alternatives)
      .then(
        (tokens) => ({ tokens, workMs: this.deps.now() - started }),
        () => undefined,
      )
      .finally(() => this.controllers.delete(controller));
  }

  private track(c: AbortController): AbortController {
    if (this.deps.signal.aborted) c.abort();
    this.controllers.add(c);
    return c;
  }

  /** After a commit: keeps the chain only if every draft token of the round was accepted. */
  keepIf(ctx: readonly number[]): void {
    const first = this.links[0];
    if (first === undefined) return;
    if (ctx.length !== first.base.length + 1 || !first.base.every((id, i) => id === ctx[i])) this.drop();
  }

  /**
   * What draft-ahead made for `ctx` (waiting for the draft if it is still running): the chain's
   * round when every draft was accepted, else a branch's when the rejection was one it covered.
   */
  async take(ctx: readonly number[], k: number): Promise<AheadResult> {
    const first = this.links[0];
    if (first === undefined || ctx.length !== first.base.length + 1) return this.missed(ctx, k);
    const waitStart = this.deps.now();
    const ready = await first.drafted;
    if (
      first !== this.links[0] ||
      ready === undefined ||
      ready.tokens[0]?.id !== ctx[ctx.length - 1] ||
      ready.tokens.length < 2
    )
      return this.missed(ctx, k);
    this.branches.clear();
    this.links.shift();
    this.deps.stats.draftAheadHits += 1;
    this.deps.stats.draftAheadSavedMs += Math.max(0, ready.workMs - (this.deps.now() - waitStart));
    if (first.round !== undefined) return { kind: 'sent', round: first.round };
    // The engine sends this proposal itself: stop the grow loop from sending it a second time.
    this.links = [];
    this.epoch += 1;
    return { kind: 'drafted', tokens: ready.tokens.slice(1, 1 + k), workMs: ready.workMs };
  }

  private async missed(ctx: readonly number[], k: number): Promise<AheadResult> {
    this.drop();
    const branch = await this.branches.take(ctx, k);
    return branch === undefined ? undefined : { kind: 'drafted', ...branch };
  }

  /**
   * Forgets the chain without aborting its requests: aborting an HTTP request closes its keep-alive
   * connection, which on a distant link costs a new handshake, more than letting it finish.
   */
  drop(): void {
    if (this.links.length > 0) this.deps.stats.draftAheadMisses += this.links.length;
    this.deps.stats.earlyVerificationsWasted += this.links.filter((l) => l.round !== undefined).length;
    this.links = [];
    this.epoch += 1;
  }

  /** Aborts everything still in flight (the generation is over). */
  cancel(): void {
    this.branches.clear();
    this.deps.stats.earlyVerificationsWasted += this.links.filter((l) => l.round !== undefined).length;
    this.links = [];
    this.epoch += 1;
    for (const c of this.controllers) c.abort();
    this.controllers.clear();
  }
}
