import { DsdError } from '../errors.js';
import type { BatchCost } from '../speculative/batch-window.js';
import { commonPrefix } from '../speculative/common-prefix.js';
import { DecayingMean, DecayingStepFit } from '../speculative/decaying-stats.js';
import type { EngineLoad, EngineSequence } from './types.js';

/** What the pool needs of a sequence: the tokens it holds, and a hook for its release. */
export interface PooledSequence {
  readonly held: readonly number[];
  onRelease: () => void;
  /** The cache scope of the generation that last used it. */
  owner: string;
  /** Drops what it holds (the next evaluation starts from nothing and overwrites the KV). */
  forget(): void;
}

/** One batched step as an engine that batches itself measured it. */
export interface MeasuredStep {
  positions: number;
  /** Generations that shared it. */
  generations: number;
  ms: number;
  /** Passes over the weights it took (an engine with a KV stream per sequence splits a batch). */
  passes?: number;
}

/**
 * Evaluations in flight at once on one engine. node-llama-cpp (and a batching server behind the
 * verifier) runs concurrent evaluations in one batch, so the ones overlapping an evaluation are the
 * generations its positions slowed down, and each evaluation's time against the positions in
 * flight with it fits what a step costs: a fixed part and a part per position. Together they are
 * the BatchCost the link prices a round's window with (draftsWorthVerifying).
 */
export class EvaluationOverlap {
  private readonly active = new Set<{ own: number; peers: number; positions: number }>();
  /** Evaluation time by passes and positions in flight; no slope is assumed before the positions spread. */
  private readonly time = new DecayingStepFit(0.98);
  private readonly peers = new DecayingMean(0.9);
  /** Evaluations measured so far. */
  evaluations = 0;
  /** Generation steps they served. */
  evaluatedSteps = 0;

  /** Runs one evaluation of `positions` tokens, learning what it shared and what it cost. */
  async track<T>(positions: number, evaluation: () => Promise<T>): Promise<T> {
    const mine = { own: positions, peers: this.active.size, positions };
    for (const other of this.active) {
      other.peers += 1;
      other.positions += positions;
      mine.positions += other.own;
    }
    const started = performance.now();
    this.active.add(mine);
    try {
      const result = await evaluation();
      this.evaluations += 1;
      this.evaluatedSteps += 1;
      this.time.add(1, mine.positions, performance.now() - started);
      this.peers.add(mine.peers);
      return result;
    } finally {
      this.active.delete(mine);
    }
  }

  /** One batched step measured whole by an engine that batches itself (the native engine). */
  record(step: MeasuredStep): void {
    this.evaluations += 1;
    this.evaluatedSteps += step.generations;
    this.time.add(step.passes ?? 1, step.positions, step.ms);
    for (let i = 0; i < step.generations; i++) this.peers.add(step.generations - 1);
  }

  /** What a step costs and how many share it, as measured so far. */
  cost(): BatchCost {
    const { fixedMs, positionMs } = this.time.fit() ?? { fixedMs: 0, positionMs: 0 };
    return { fixedMs, positionMs, peers: this.peers.value ?? 0 };
  }
}

/**
 * What every engine's sequence keeps for the pool: the tokens it holds, who used it last, and the
 * release hook. Engines extend it with how they evaluate.
 */
export class PooledState implements PooledSequence {
  readonly held: number[] = [];
  onRelease: () => void = () => {};
  owner = '';

  forget(): void {
    this.held.length = 0;
  }

  /** Throws unless an evaluation of `tokens` after `held[0..from)` scoring `positions` fits. */
  protected checkEvaluation(from: number, tokens: number, positions: number, contextTokens: number): void {
    if (from > this.held.length || positions < 1 || positions > tokens)
      throw new DsdError(
        'internal_error',
        `bad evaluation: from ${from} of ${this.held.length}, ${positions} positions`,
      );
    if (from + tokens > contextTokens)
      throw new DsdError('invalid_request', `the context would exceed ${contextTokens} tokens`);
  }

  release(): void {
    this.onRelease();
  }
}

/**
 * What every engine that holds its generations in a SequencePool shares: handing sequences out,
 * their load, and the batch-cost model its evaluations feed.
 */
export abstract class PooledEngine<S extends PooledSequence & EngineSequence> {
  protected abstract readonly pool: SequencePool<S>;
  protected readonly overlap = new EvaluationOverlap();

  acquire(prompt: readonly number[], signal: AbortSignal, scope = ''): Promise<EngineSequence> {
    return this.pool.acquire(prompt, signal, scope);
  }

  load(): EngineLoad {
    return { ...this.pool.load(), evaluations: this.overlap.evaluations, evaluatedSteps: this.overlap.evaluatedSteps };
  }

  batchCost(): BatchCost {
    return this.overlap.cost();
  }
}

/** `ids` with the model's BOS in front when special tokens are asked for and it is not there yet. */
export function withBos(ids: number[], bos: number | undefined, addSpecial: boolean): number[] {
  return addSpecial && bos !== undefined && ids[0] !== bos ? [bos, ...ids] : ids;
}

/**
 * Hands out a fixed set of KV sequences, one per active generation. A new generation gets the
 * idle sequence that holds the longest prefix of its prompt (a conversation's next turn finds its
 * earlier turns), ties going to the one idle longest, so hot prefixes are kept; acquirers wait in
 * order while every sequence is busy. With `compactBelowTokens`, a prefix shorter than that counts
 * for nothing while other sequences are busy, and a sequence next to a busy one wins instead, so
 * the busy ones stay runs of consecutive ids.
 */
export class SequencePool<S extends PooledSequence> {
  private readonly idle: S[];
  private readonly rank: Map<S, number>;
  /** The ranks of the sequences handed out (how many are busy). */
  private readonly busyRanks = new Set<number>();
  /** Prompt tokens found in an idle sequence's KV when it was handed out (multi-turn reuse). */
  reusedPrefixTokens = 0;
  private readonly waiting: { prompt: readonly number[]; scope: string; resolve: (s: S) => void }[] = [];

  /**
   * `compactBelowTokens`: for an engine that batches only consecutive sequence ids in one pass (a
   * KV stream per sequence, equalSplitPasses): 4 streams on scattered ids took up to 4 passes a
   * step, where a prefix of a few tokens saved one short prefill.
   */
  constructor(
    sequences: readonly S[],
    private readonly o: { compactBelowTokens?: number } = {},
  ) {
    this.idle = [...sequences];
    this.rank = new Map(sequences.map((s, i) => [s, i]));
    for (const s of sequences) s.onRelease = () => this.release(s);
  }

  acquire(prompt: readonly number[], signal: AbortSignal, scope = ''): Promise<S> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.idle.length > 0) return Promise.resolve(this.take(prompt, scope));
    return new Promise<S>((resolve, reject) => {
      const entry = {
        prompt,
        scope,
        resolve: (s: S) => {
          signal.removeEventListener('abort', onAbort);
          resolve(s);
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  /** Its sequences' load (the engine adds its evaluation counts). */
  load(): Omit<EngineLoad, 'evaluations' | 'evaluatedSteps'> {
    return {
      busy: this.busyRanks.size,
      idle: this.idle.length,
      waiting: this.waiting.length,
      reusedPrefixTokens: this.reusedPrefixTokens,
    };
  }

  private take(prompt: readonly number[], scope: string): S {
    const compact = this.busyRanks.size > 0 ? (this.o.compactBelowTokens ?? 0) : 0;
    let best = 0;
    let bestLength = -1;
    let bestWorth = -1;
    let bestNear = false;
    this.idle.forEach((s, i) => {
      // Another tenant's prefix counts for nothing: reusing it would show in this one's timing.
      const n = s.owner === scope ? commonPrefix(s.held, prompt) : 0;
      const worth = n < compact ? 0 : n;
      const near = compact > 0 && this.nextToBusy(s);
      if (worth > bestWorth || (worth === bestWorth && near && !bestNear)) {
        best = i;
        bestLength = n;
        bestWorth = worth;
        bestNear = near;
      }
    });
    const [s] = this.idle.splice(best, 1) as [S];
    this.busyRanks.add(this.rank.get(s) ?? -1);
    if (s.owner !== scope) s.forget();
    s.owner = scope;
    this.reusedPrefixTokens += Math.max(0, Math.min(bestLength, prompt.length - 1));
    return s;
  }

  /** Whether a sequence's id is next to a busy one's (handing it out keeps the busy ids in runs). */
  private nextToBusy(s: S): boolean {
    const r = this.rank.get(s) ?? -2;
    return this.busyRanks.has(r - 1) || this.busyRanks.has(r + 1);
  }

  private release(s: S): void {
    if (this.idle.includes(s)) return;
    this.busyRanks.delete(this.rank.get(s) ?? -1);
    this.idle.push(s);
    const next = this.waiting.shift();
    if (next !== undefined) next.resolve(this.take(next.prompt, next.scope));
  }
}
