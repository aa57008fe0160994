import { DecayingMean } from '../../speculative/decaying-stats.js';
import type { GeneratedToken } from '../../speculative/types.js';

/** What a sequence id's drafts start from before it has shown any: about the pairs dsd is used with. */
const PRIOR_ACCEPTANCE = 0.7;

/**
 * The engine's own view of how well each sequence's drafts do: per draft position verified up to
 * and including the first rejection, whether the target's token matched. The batch shaper weighs
 * a sequence's drafts by it; the engine sees drafts and scores, not the link's sessions.
 */
export class DraftAcceptance {
  private readonly bySeq = new Map<number, DecayingMean>();
  private readonly overall = new DecayingMean(0.99);

  /** Counts a verified job: `drafts` are its draft tokens, `scored` the target's tokens after each position. */
  observe(seq: number, drafts: readonly number[], scored: readonly GeneratedToken[]): void {
    if (drafts.length === 0) return;
    let mean = this.bySeq.get(seq);
    if (mean === undefined) {
      mean = new DecayingMean(0.9);
      this.bySeq.set(seq, mean);
    }
    for (let i = 0; i < drafts.length; i++) {
      const hit = scored[i]?.id === drafts[i] ? 1 : 0;
      mean.add(hit);
      this.overall.add(hit);
      if (hit === 0) return;
    }
  }

  /** The chance a draft position of this sequence is accepted, the pooled one while it has little to show. */
  of(seq: number): number {
    const pooled = this.overall.value ?? PRIOR_ACCEPTANCE;
    const own = this.bySeq.get(seq);
    if (own === undefined || own.weight < 4) return pooled;
    return own.value ?? pooled;
  }
}
