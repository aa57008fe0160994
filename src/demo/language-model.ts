import type { TokenProb } from '../speculative/sampling.js';
import type { WordTokenizer } from './word-tokenizer.js';

/** A next-token model the emulated servers can serve. */
export interface LanguageModel {
  readonly tokenizer: WordTokenizer;
  /** The next-token distribution after `context` (ids with non-zero probability). */
  distribution(context: readonly number[]): TokenProb[];
}

/** FNV-1a over the last ids of a context, mapped to [0, 1). */
function contextHash(context: readonly number[], seed: number): number {
  let h = 2166136261 ^ seed;
  for (const id of context.slice(-16)) {
    h ^= id;
    h = Math.imul(h, 16777619);
  }
  h ^= context.length;
  h = Math.imul(h, 16777619);
  return (h >>> 0) / 4294967296;
}

/**
 * A draft with a chosen agreement rate: the base (target) model's distribution, except that in a
 * fraction 1 − agreement of contexts (decided by a hash of the context, so the same context always
 * gets the same answer) its two most probable tokens are swapped. Greedy acceptance is then
 * ≈ `agreement` at every position, independently: the knob the benchmarks sweep.
 */
export class AgreementModel implements LanguageModel {
  constructor(
    private readonly base: LanguageModel,
    readonly agreement: number,
    private readonly seed = 1,
  ) {}

  get tokenizer(): WordTokenizer {
    return this.base.tokenizer;
  }

  distribution(context: readonly number[]): TokenProb[] {
    const dist = this.base.distribution(context).sort((a, b) => b.prob - a.prob || a.id - b.id);
    if (contextHash(context, this.seed) < this.agreement || dist.length < 2) return dist;
    const [first, second, ...rest] = dist as [TokenProb, TokenProb, ...TokenProb[]];
    return [{ id: second.id, prob: first.prob }, { id: first.id, prob: second.prob }, ...rest];
  }
}
