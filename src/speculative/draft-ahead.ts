import type { DraftPort } from './engine-types.js';
import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

interface Pending {
  /** The context the draft continues: ctx + all of this round's draft tokens. */
  base: number[];
  controller: AbortController;
  result: Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined>;
}

/**
 * Draft-ahead overlap: while the target verifies round r, the draft continues from the optimistic
 * context (all of round r accepted). Its first token is its guess for the bonus token; if
 * verification accepts everything and the bonus equals that guess, the rest is round r+1's
 * proposal, made while the target was busy. Otherwise it is aborted and dropped.
 */
export class DraftAhead {
  private pending: Pending | undefined;

  constructor(
    private readonly now: () => number,
    private readonly stats: SpeculationStats,
  ) {}

  /** Starts proposing 1 + k tokens (the bonus guess, then k) after `base`. */
  start(draft: DraftPort, base: number[], k: number, signal: AbortSignal): void {
    this.drop();
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const started = this.now();
    const result = draft.propose(base, k + 1, controller.signal).then(
      (tokens) => ({ tokens, workMs: this.now() - started }),
      () => undefined,
    ).finally(() => signal.removeEventListener('abort', onAbort));
    this.pending = { base, controller, result };
  }

  /** After a commit: keeps the pending proposal only if every draft token of the round was accepted. */
  keepIf(ctx: readonly number[]): void {
    const p = this.pending;
    if (p === undefined) return;
    if (ctx.length !== p.base.length + 1 || !p.base.every((id, i) => id === ctx[i])) {
      this.stats.draftAheadMisses += 1;
      this.drop();
    }
  }

  /** The proposal for `ctx` if draft-ahead guessed it (waiting for it if still running). */
  async take(ctx: readonly number[], k: number): Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined> {
    const p = this.pending;
    if (p === undefined) return undefined;
    this.pending = undefined;
    if (ctx.length !== p.base.length + 1) return undefined;
    const waitStart = this.now();
    const ready = await p.result;
    if (ready === undefined || ready.tokens[0]?.id !== ctx[ctx.length - 1] || ready.tokens.length < 2) {
      this.stats.draftAheadMisses += 1;
      return undefined;
    }
    this.stats.draftAheadHits += 1;
    this.stats.draftAheadSavedMs += Math.max(0, ready.workMs - (this.now() - waitStart));
    return { tokens: ready.tokens.slice(1, 1 + k), workMs: ready.workMs };
  }

  /**
   * Forgets a pending proposal without aborting it: a draft request is short, and aborting an HTTP
   * request closes its keep-alive connection, which costs more than letting it finish.
   */
  drop(): void {
    this.pending = undefined;
  }

  /** Aborts and forgets any pending proposal (the generation is over). */
  cancel(): void {
    this.pending?.controller.abort();
    this.pending = undefined;
  }
}
