import type { DraftPort } from './engine-types.js';
import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

interface Pending {
  ctx: number[];
  started: number;
  controller: AbortController;
  result: Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined>;
}

/**
 * Draft-ahead overlap: while the target verifies round r, the draft continues from the optimistic
 * context (all of round r accepted plus its own guess for the bonus token). If verification lands
 * exactly there, round r+1's proposal is already (being) made; otherwise it is aborted and dropped.
 */
export class DraftAhead {
  private pending: Pending | undefined;

  constructor(
    private readonly now: () => number,
    private readonly stats: SpeculationStats,
  ) {}

  /** Starts proposing k+1 tokens (k, plus the next guess) after `ctx`. */
  start(draft: DraftPort, ctx: number[], k: number, signal: AbortSignal): void {
    this.cancel();
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const started = this.now();
    const result = draft.propose(ctx, k + 1, controller.signal).then(
      (tokens) => ({ tokens, workMs: this.now() - started }),
      () => undefined,
    ).finally(() => signal.removeEventListener('abort', onAbort));
    this.pending = { ctx, started, controller, result };
  }

  /** After a commit: keeps the pending proposal only if the context is exactly the one it guessed. */
  keepIf(ctx: readonly number[]): void {
    const p = this.pending;
    if (p === undefined) return;
    const same = p.ctx.length === ctx.length && p.ctx.every((id, i) => id === ctx[i]);
    if (!same) {
      this.stats.draftAheadMisses += 1;
      this.cancel();
    }
  }

  /** The proposal for `ctx` if draft-ahead made it (waiting for it if still running). */
  async take(ctx: readonly number[]): Promise<{ tokens: GeneratedToken[]; workMs: number } | undefined> {
    const p = this.pending;
    if (p === undefined) return undefined;
    this.pending = undefined;
    if (p.ctx.length !== ctx.length) {
      p.controller.abort();
      return undefined;
    }
    const waitStart = this.now();
    const ready = await p.result;
    if (ready === undefined) return undefined;
    this.stats.draftAheadHits += 1;
    this.stats.draftAheadSavedMs += Math.max(0, ready.workMs - (this.now() - waitStart));
    return ready;
  }

  /** Aborts and drops any pending proposal. */
  cancel(): void {
    this.pending?.controller.abort();
    this.pending = undefined;
  }
}
