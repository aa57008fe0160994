import { DsdError } from '../../errors.js';
import type { GeneratedToken } from '../../speculative/types.js';
import type { EvaluationOverlap } from '../sequence-pool.js';
import type { PositionSampling } from '../types.js';
import { shapeBatch } from './batch-shape.js';
import { DraftAcceptance } from './draft-acceptance.js';
import { equalSplitPasses } from './equal-split.js';
import type { EngineHandle, EvalArgs, NativeApi } from './native-library.js';

/** One sequence's round: keep `keep` tokens of its KV, append `tokens`, score the last `outputs`. */
export interface EvalJob {
  seq: number;
  keep: number;
  tokens: readonly number[];
  outputs: number;
  s: PositionSampling;
  /** Positions the sequence's KV holds in all: filler never goes past them. */
  contextTokens: number;
}

interface Pending extends EvalJob {
  resolve: (t: GeneratedToken[]) => void;
  reject: (err: Error) => void;
}

/** A job as its batch evaluates it: the first `answered` of its scored positions go back to it. */
interface Shaped extends Pending {
  answered: number;
}

/** Most scored positions in one native call (the shim's batch holds n_batch rows). */
const MAX_OUTPUTS_PER_CALL = 512;

/** The shim's n_ubatch (the most tokens one pass over the weights takes) for contexts of 512 tokens or more. */
const TOKENS_PER_PASS = 512;

/**
 * Gathers the rounds of every sequence that asks while a decode runs (or in the same turn of the
 * event loop) and evaluates them in one dsd_eval call on koffi's worker thread: one decode of the
 * whole batch, each rejected tail trimmed and each scored position's token picked natively
 * (continuous batching: a call never waits for rounds that have not asked yet).
 */
export class EvalBatcher {
  private readonly queue: Pending[] = [];
  /** Whether a token ends generation, asked of llama.cpp once per token id. */
  private readonly endsGeneration = new Map<number, boolean>();
  private running = false;
  private scheduled = false;
  private readonly acceptance = new DraftAcceptance();

  constructor(
    private readonly api: NativeApi,
    private readonly engine: EngineHandle,
    private readonly overlap: EvaluationOverlap,
  ) {}

  submit(job: EvalJob): Promise<GeneratedToken[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...job, resolve, reject });
      if (this.running || this.scheduled) return;
      this.scheduled = true;
      // A microtask, not a later turn of the loop: rounds asked in this same turn join the call,
      // and the decode starts before the caller goes on (decodeAlone hands its token on after
      // submitting the next step, so the SSE write overlaps the decode). Rounds that arrive while
      // it runs wait for the next call, which takes them all.
      queueMicrotask(() => {
        this.scheduled = false;
        void this.drain();
      });
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        // One turn of the event loop first: the sequences the last call answered resubmit through
        // a few microtask hops each (their generators, the SSE write), and a call taken before
        // they all have splits the batch in two that then alternate (measured: 4 streams straight
        // from the verifier at 130 tokens/s in some runs, 270 in others; one call per step is 270).
        await new Promise<void>((r) => setImmediate(r));
        await this.run(this.take());
      }
    } finally {
      this.running = false;
    }
  }

  private take(): Pending[] {
    let outputs = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || outputs + (this.queue[n]?.outputs ?? 0) <= MAX_OUTPUTS_PER_CALL)) {
      outputs += this.queue[n]?.outputs ?? 0;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async run(taken: Pending[]): Promise<void> {
    // In sequence-id order: llama.cpp's equal split puts only consecutive ids in one pass, so
    // sequences out of order split even a batch of single tokens (16 positions: 50 ms against 40).
    const jobs = this.shaped(taken.sort((a, b) => a.seq - b.seq));
    const args = flatten(this.engine, jobs);
    const positions = args.tokens.length;
    const passes = equalSplitPasses(
      jobs.map((j) => ({ seq: j.seq, tokens: j.tokens.length })),
      TOKENS_PER_PASS,
    ).length;
    const started = performance.now();
    let rc: number;
    try {
      rc = await this.api.evalAsync(args);
    } catch (err) {
      for (const j of jobs) j.reject(engineError((err as Error).message));
      return;
    }
    this.overlap.record({ positions, generations: jobs.length, ms: performance.now() - started, passes });
    if (rc !== 0) {
      const why = this.api.lastError(this.engine);
      for (const j of jobs) j.reject(engineError(why));
      return;
    }
    let o = 0;
    for (const j of jobs) {
      const scored: GeneratedToken[] = [];
      for (let i = 0; i < j.answered; i++) scored.push(this.token(args, o + i, j.s.topN));
      const firstDraft = j.tokens.length - j.outputs + 1;
      this.acceptance.observe(j.seq, j.tokens.slice(firstDraft, firstDraft + j.answered - 1), scored);
      o += j.outputs;
      j.resolve(scored);
    }
  }

  /**
   * The jobs laid out as this batch verifies them (shapeBatch): drafts it does not verify cut off
   * their end, filler appended to even out their lengths (scored, then dropped in `run`).
   */
  private shaped(jobs: Pending[]): Shaped[] {
    const shapes = shapeBatch(
      jobs.map((j) => ({
        seq: j.seq,
        pending: j.tokens.length - (j.outputs - 1),
        drafts: j.outputs - 1,
        acceptance: this.acceptance.of(j.seq),
      })),
      this.overlap.cost(),
      TOKENS_PER_PASS,
    );
    // Filler must not push the call past what the shim's batch scores in one go.
    const outputs = shapes.reduce((n, x) => n + x.drafts + 1 + x.pad, 0);
    if (outputs > MAX_OUTPUTS_PER_CALL) for (const x of shapes) x.pad = 0;
    return jobs.map((j, i) => {
      const { drafts = j.outputs - 1, pad: even = 0 } = shapes[i] ?? {};
      const cut = j.outputs - 1 - drafts;
      // A sequence at the end of its context gets less filler (its batch may then take a pass more).
      const pad = Math.max(0, Math.min(even, j.contextTokens - j.keep - (j.tokens.length - cut)));
      if (cut <= 0 && pad === 0) return { ...j, answered: j.outputs };
      const kept = j.tokens.slice(0, j.tokens.length - cut);
      const filler = new Array<number>(pad).fill(kept.at(-1) ?? 0);
      return { ...j, tokens: [...kept, ...filler], outputs: drafts + 1 + pad, answered: drafts + 1 };
    });
  }

  private token(a: EvalArgs, o: number, topN: number): GeneratedToken {
    const id = a.outIds[o] ?? -1;
    const t: GeneratedToken = { id };
    let eog = this.endsGeneration.get(id);
    if (eog === undefined) {
      eog = this.api.isEog(this.engine, id) !== 0;
      this.endsGeneration.set(id, eog);
    }
    if (eog) t.endOfGeneration = true;
    if (topN <= 0) return t;
    t.logprob = a.outLogprob[o] ?? Number.NEGATIVE_INFINITY;
    const top: { id: number; logprob: number }[] = [];
    for (let i = 0; i < topN; i++) {
      const tid = a.topIds[o * a.topN + i] ?? -1;
      if (tid >= 0) top.push({ id: tid, logprob: a.topLogprob[o * a.topN + i] ?? Number.NEGATIVE_INFINITY });
    }
    t.top = top;
    return t;
  }
}

function engineError(why: string): DsdError {
  return new DsdError('internal_error', `the target engine failed: ${why}`);
}

/**
 * A fresh 32-bit seed per job; the shim adds the position, so positions of one batch never share
 * a draw. Never the request's own seed: every round would then replay the same draws.
 */
function jobSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

function flatten(engine: EngineHandle, jobs: readonly EvalJob[]): EvalArgs {
  const n = jobs.length;
  const outputs = jobs.reduce((sum, j) => sum + j.outputs, 0);
  const topN = Math.max(0, ...jobs.map((j) => j.s.topN));
  const tokens = new Int32Array(jobs.reduce((sum, j) => sum + j.tokens.length, 0));
  const a: EvalArgs = {
    engine,
    jobs: n,
    seq: new Int32Array(n),
    keep: new Int32Array(n),
    tokenCounts: new Int32Array(n),
    outputCounts: new Int32Array(n),
    temperature: new Float32Array(n),
    topK: new Int32Array(n),
    topP: new Float32Array(n),
    minP: new Float32Array(n),
    seed: new Uint32Array(n),
    tokens,
    wantLogprobs: topN > 0 ? 1 : 0,
    topN,
    outIds: new Int32Array(outputs),
    outLogprob: new Float32Array(Math.max(1, outputs)),
    topIds: new Int32Array(Math.max(1, outputs * topN)),
    topLogprob: new Float32Array(Math.max(1, outputs * topN)),
  };
  let offset = 0;
  jobs.forEach((j, i) => {
    a.seq[i] = j.seq;
    a.keep[i] = j.keep;
    a.tokenCounts[i] = j.tokens.length;
    a.outputCounts[i] = j.outputs;
    a.temperature[i] = j.s.sampling.temperature;
    a.topK[i] = j.s.sampling.topK;
    a.topP[i] = j.s.sampling.topP;
    a.minP[i] = j.s.sampling.minP;
    a.seed[i] = jobSeed();
    tokens.set(j.tokens, offset);
    offset += j.tokens.length;
  });
  return a;
}
