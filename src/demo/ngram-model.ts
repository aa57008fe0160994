import type { TokenProb } from '../speculative/sampling.js';
import type { LanguageModel } from './language-model.js';
import { BOS_ID, EOS_ID, type WordTokenizer } from './word-tokenizer.js';

/**
 * An interpolated n-gram language model over token ids (Jelinek–Mercer smoothing with a tiny
 * uniform floor). Higher orders are weighted first; an unseen context's weight goes to the rest.
 */
export class NgramModel implements LanguageModel {
  /** counts[n] maps a context of n ids to next-id counts (n = 0 is the unigram). */
  private readonly counts: Map<string, Map<number, number>>[] = [];

  constructor(
    readonly tokenizer: WordTokenizer,
    readonly order: number,
    private readonly weights: readonly number[],
  ) {
    if (weights.length !== order) throw new Error('one weight per order is needed');
    for (let n = 0; n < order; n++) this.counts.push(new Map());
  }

  /**
   * Trains on a text whose paragraphs (blank-line separated) are documents: BOS … EOS. With
   * `endless`, the whole text is one document without EOS (benchmarks want fixed-length outputs).
   */
  static train(
    tokenizer: WordTokenizer,
    text: string,
    order: number,
    weights: readonly number[],
    endless = false,
  ): NgramModel {
    const model = new NgramModel(tokenizer, order, weights);
    if (endless) {
      const ids = tokenizer.encode(text.replace(/\s*\n\s*\n\s*/g, ' '), { addBos: true, parseSpecial: false });
      model.add([...ids, ...ids.slice(1)]);
      return model;
    }
    for (const doc of text
      .split(/\n\s*\n/)
      .map((d) => d.trim())
      .filter(Boolean)) {
      model.add([...tokenizer.encode(doc, { addBos: true, parseSpecial: false }), EOS_ID]);
    }
    return model;
  }

  private add(ids: readonly number[]): void {
    for (let i = 1; i < ids.length; i++) {
      for (let n = 0; n < this.order; n++) {
        if (i - n < 0) break;
        const key = ids.slice(i - n, i).join(',');
        const table = this.counts[n] as Map<string, Map<number, number>>;
        let next = table.get(key);
        if (next === undefined) {
          next = new Map();
          table.set(key, next);
        }
        const id = ids[i] as number;
        next.set(id, (next.get(id) ?? 0) + 1);
      }
    }
  }

  /** The next-token distribution (all ids with non-zero probability; sums to 1). */
  distribution(context: readonly number[]): TokenProb[] {
    const vocab = this.tokenizer.size;
    const probs = new Float64Array(vocab);
    let weightUsed = 0;
    for (let n = this.order - 1; n >= 0; n--) {
      if (context.length < n) continue;
      const next = this.counts[n]?.get(context.slice(context.length - n).join(','));
      if (next === undefined) continue;
      const w = this.weights[this.order - 1 - n] as number;
      let total = 0;
      for (const c of next.values()) total += c;
      for (const [id, c] of next) probs[id] = (probs[id] as number) + (w * c) / total;
      weightUsed += w;
    }
    const floor = 1e-4;
    const out: TokenProb[] = [];
    for (let id = 0; id < vocab; id++) {
      if (id === BOS_ID) continue;
      const p = ((probs[id] as number) / Math.max(weightUsed, 1e-9)) * (1 - floor) + floor / (vocab - 1);
      out.push({ id, prob: p });
    }
    return out;
  }
}
