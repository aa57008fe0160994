import type { ModelServer } from '../../backends/types.js';

/** How prompt text becomes ids (a server's /tokenize, or a stand-in for it). */
export type Tokenize = (text: string, addSpecial: boolean, signal: AbortSignal) => Promise<number[]>;

const NEVER = new Promise<never>(() => undefined);

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/**
 * Tokenizes on the local draft and the distant target at once and takes the first answer, which is
 * usually the draft's: a distant target's /tokenize costs a round trip before the first round can
 * be sent. The draft was checked to share the target's vocabulary, but special-token parsing and
 * normalisation may still differ, so its ids are provisional: `confirmed()` says whether the
 * target's own answers (already on their way, memoised) agree, and the caller shows the client
 * nothing before it does.
 */
export class RacingTokenizer {
  private readonly targetCalls = new Map<string, Promise<number[]>>();
  /** One per draft answer taken: whether the target's own answer agrees with it. */
  private readonly checks: Promise<boolean>[] = [];

  constructor(
    private readonly target: ModelServer,
    private readonly draft: Tokenize,
  ) {}

  /** The first of the two answers. */
  readonly fast: Tokenize = async (text, addSpecial, signal) => {
    const fromTarget = this.targetTokenize(text, addSpecial, signal);
    // A failing draft only loses the race; the target's answer (or failure) decides.
    const fromDraft = this.draft(text, addSpecial, signal).catch(() => NEVER);
    const winner = await Promise.race([
      fromTarget.then((ids) => ({ ids, draft: false })),
      fromDraft.then((ids) => ({ ids, draft: true })),
    ]);
    if (winner.draft) {
      const check = fromTarget.then((ids) => sameIds(ids, winner.ids));
      check.catch(() => undefined);
      this.checks.push(check);
    }
    return winner.ids;
  };

  /** The target's own answer; asked once per text, so a second pass costs no round trip. */
  readonly targetTokenize: Tokenize = (text, addSpecial, signal) => {
    const key = `${addSpecial ? 1 : 0}${text}`;
    let call = this.targetCalls.get(key);
    if (call === undefined) {
      call = this.target.tokenize(text, addSpecial, signal);
      // Handled here so that a request ended before the confirmation leaves no unhandled rejection.
      call.catch(() => undefined);
      this.targetCalls.set(key, call);
    }
    return call;
  };

  /** Whether any id so far came from the draft (and so waits for the target's word). */
  get provisional(): boolean {
    return this.checks.length > 0;
  }

  /** True when every draft answer so far equals the target's; rejects when the target failed. */
  async confirmed(): Promise<boolean> {
    return (await Promise.all(this.checks)).every(Boolean);
  }
}
