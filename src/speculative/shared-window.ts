/** What the edge hears back about one proposal in a stream step. */
export interface ProposalUse {
  /** Drafts the target verified in the step. */
  drafted: number;
  /** Drafts that lined up but that a shared target declined to verify. */
  declined: number;
  /** The window the target would verify at, by its own costs, when it says. */
  window?: number;
}

/** DSD_WINDOW_MAX's default: where a stream following its target stops when nothing else says. */
export const DEFAULT_WINDOW_MAX = 16;

/** How a stream's window may move. */
export interface StreamWindowOptions {
  /** Follow the target's own window (not when the user fixed k). */
  follow: boolean;
  /** The edge's largest window (DSD_WINDOW_MAX). */
  max: number;
}

/**
 * The window a stream proposes when the target is shared. The verifier verifies only the drafts
 * worth its batch's time (draftsWorthVerifying) and says how many it declined; drafting those is
 * draft time and link bytes for nothing, and a draft server that many streams share is the edge's
 * bottleneck under load (#26: 2 declined drafts per generated token at 16 streams). So the window
 * follows the verifier's answer: down to what it verified when it declined some, up by one after
 * each step that used all of it, back to the planner's k when the target has time again. When it
 * declined a whole proposal the stream drafts every 2nd, 4th, … 32nd step, one draft each, until
 * one is used again. A target that knows its step's costs says which window it would verify at
 * (in the stream, where it never waits, its costs are the whole price), and the window follows
 * that instead of the planner's k unless the user fixed k.
 */
export class SharedTargetWindow {
  private cap: number;
  private backoff = 0;
  private skip = 0;

  constructor(
    private k: number,
    private readonly o: StreamWindowOptions = { follow: false, max: k },
  ) {
    this.cap = k;
  }

  /** The drafts to propose next; 0 while the stream is backing off. */
  next(): number {
    if (this.skip > 0) {
      this.skip -= 1;
      return 0;
    }
    return Math.max(1, this.cap);
  }

  /** Takes in how the target used a step's proposal (a step with no proposal says nothing). */
  observe(use: ProposalUse): void {
    if (use.window !== undefined && this.o.follow) {
      this.k = Math.max(1, Math.min(this.o.max, use.window));
      this.cap = this.k;
    }
    if (use.declined > 0) {
      this.cap = use.drafted;
      if (use.drafted > 0) this.backoff = 0;
      else {
        this.backoff = Math.min(32, Math.max(1, 2 * this.backoff));
        this.skip = this.backoff;
      }
    } else if (use.drafted > 0) {
      this.backoff = 0;
      if (use.drafted >= this.cap) this.cap = Math.min(this.k, use.drafted + 1);
    }
  }
}
