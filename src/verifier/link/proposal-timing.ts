/** How many context lengths' send times a stream remembers (proposals older than that are stale anyway). */
const REMEMBERED = 64;

/**
 * When the next proposal of an assisted stream should arrive, learnt from the ones that did. The
 * edge drafts from each context it hears of, so a proposal from context length L arrives one
 * turnaround (link round trip, the edge's draft) after the verifier sent the tokens that made L.
 * Across a link, proposals are always a few tokens behind, so timing one only against the newest
 * context (as a round would) never learns anything.
 */
export class ProposalTiming {
  private readonly sentAt = new Map<number, number>();
  private turnaround: number | undefined;
  private aligned = 0.5;
  private newestAt = -1;

  /** The stream sent the tokens that made its context `length` long at `nowMs`. */
  sent(length: number, nowMs: number): void {
    this.sentAt.set(length, nowMs);
    // Lengths grow by a step's tokens, not one by one: forget every one too far back (oldest first).
    for (const old of this.sentAt.keys()) {
      if (old > length - REMEMBERED) break;
      this.sentAt.delete(old);
    }
  }

  /** A proposal from context length `at` arrived at `nowMs`; `usable`: it lined up with the context then. */
  arrived(at: number, nowMs: number, usable: boolean): void {
    this.aligned = 0.8 * this.aligned + 0.2 * (usable ? 1 : 0);
    this.newestAt = Math.max(this.newestAt, at);
    const sent = this.sentAt.get(at);
    if (sent === undefined) return;
    const t = nowMs - sent;
    this.turnaround = this.turnaround === undefined ? t : 0.7 * this.turnaround + 0.3 * t;
  }

  /** The share of proposals that lined up on arrival (a decaying mean). */
  alignedShare(): number {
    return this.aligned;
  }

  /**
   * Milliseconds until the next proposal is due: the one drafted from the oldest context sent
   * after the newest proposal's, whose turnaround has not passed yet. Undefined when none is due.
   */
  dueMs(length: number, nowMs: number): number | undefined {
    if (this.turnaround === undefined) return undefined;
    for (let l = Math.max(this.newestAt + 1, length - REMEMBERED + 1); l <= length; l++) {
      const sent = this.sentAt.get(l);
      if (sent === undefined) continue;
      const due = sent + this.turnaround - nowMs;
      if (due > 0) return due;
    }
    return undefined;
  }
}
