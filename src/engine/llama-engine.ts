import {
  type ControlledEvaluateInputItem,
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
} from 'node-llama-cpp';
import { chatMlPrompt } from '../backends/chatml.js';
import type { ChatMessage } from '../backends/types.js';
import { DsdError } from '../errors.js';
import type { GeneratedToken } from '../speculative/types.js';
import { type EvaluationOverlap, PooledEngine, PooledState, SequencePool, withBos } from './sequence-pool.js';
import { TokenBytes } from './token-bytes.js';

/** Positions one in-process evaluation may score (the window cap the edge sees). */
export const MAX_SCORED_POSITIONS = 64;

import type { EngineInfo, EngineSequence, PositionSampling, TargetEngine } from './types.js';

/** How the embedded llama.cpp target is loaded. */
export interface LlamaEngineOptions {
  modelPath: string;
  /** CPU threads for evaluation. */
  threads: number;
  /** Context tokens per sequence (default: the model's trained context). */
  contextTokens?: number | undefined;
  /** Concurrent generations; their rounds are evaluated in one batch. */
  sequences: number;
  /** node-llama-cpp's GPU choice (false: the CPU). */
  gpu?: false | 'cuda' | 'vulkan' | 'auto';
  gpuLayers?: number | 'all';
}

/**
 * The target model in-process through node-llama-cpp (the same llama.cpp commit as the
 * llama-server our tests build). `build: 'never'` takes a local build of the binding when one
 * exists and the prebuilt CPU binary from npm otherwise, so start-up never compiles or downloads.
 */
export async function loadLlamaEngine(o: LlamaEngineOptions): Promise<TargetEngine> {
  const llama = await getLlama({
    gpu: o.gpu ?? false,
    build: 'never',
    logLevel: LlamaLogLevel.error,
    maxThreads: o.threads,
  });
  const gpuLayers = llama.gpu === false ? 0 : (o.gpuLayers ?? 'auto');
  const model = await llama.loadModel({ modelPath: o.modelPath, gpuLayers: gpuLayers === 'all' ? 'max' : gpuLayers });
  const contextSize = o.contextTokens ?? model.trainContextSize;
  const context = await model.createContext({ sequences: o.sequences, threads: o.threads, contextSize });
  return new LlamaEngine(llama, model, context, o);
}

class LlamaEngine extends PooledEngine<LlamaSequence> implements TargetEngine {
  readonly info: EngineInfo;
  protected readonly pool: SequencePool<LlamaSequence>;

  constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    o: LlamaEngineOptions,
  ) {
    super();
    const name = o.modelPath.split(/[\\/]/).pop() ?? o.modelPath;
    this.info = {
      modelName: name,
      contextTokens: context.contextSize,
      bosId: model.tokens.bos ?? undefined,
      eosId: model.tokens.eos ?? undefined,
      vocabSize: vocabularySize(model),
      sequences: o.sequences,
      maxPositions: MAX_SCORED_POSITIONS,
      build: llama.buildType === 'localBuild' ? 'local' : 'prebuilt',
      engine: 'node-llama-cpp',
      backend: llama.gpu === false ? 'cpu' : llama.gpu,
      device: llama.gpu === false ? 'CPU' : llama.gpu,
    };
    const sequences = Array.from(
      { length: o.sequences },
      () => new LlamaSequence(context.getSequence(), context.contextSize, model.tokens.eos ?? undefined, this.overlap),
    );
    this.pool = new SequencePool(sequences);
  }

  async tokenize(text: string, addSpecial: boolean): Promise<number[]> {
    const ids = this.model.tokenize(text, true) as number[];
    return withBos(ids, this.info.bosId, addSpecial);
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    return this.text(ids);
  }

  private text(ids: readonly number[]): string {
    return this.model.detokenize(ids as never[], false);
  }

  async chatTemplate(messages: readonly ChatMessage[]): Promise<{ text: string; addSpecial: boolean }> {
    return { text: chatMlPrompt(messages), addSpecial: true };
  }

  async chatPromptIds(messages: readonly ChatMessage[]): Promise<number[]> {
    return this.tokenize(chatMlPrompt(messages), true);
  }

  private readonly bytes = new TokenBytes(this);

  tokenBytes(id: number): Promise<Uint8Array> {
    return this.bytes.of(id);
  }

  async close(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}

function vocabularySize(model: LlamaModel): number {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : 0;
}

/** A 32-bit seed per scored position: positions sampled in one batch must not share a draw. */
function positionSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

/** One node-llama-cpp context sequence with the tokens its KV holds. */
class LlamaSequence extends PooledState implements EngineSequence {
  constructor(
    private readonly seq: LlamaContextSequence,
    private readonly contextTokens: number,
    private readonly eosId: number | undefined,
    private readonly overlap: EvaluationOverlap,
  ) {
    super();
  }

  async evaluate(
    from: number,
    tokens: readonly number[],
    positions: number,
    s: PositionSampling,
  ): Promise<GeneratedToken[]> {
    this.checkEvaluation(from, tokens.length, positions, this.contextTokens);
    // `held` is cut back to `from` whenever it is longer; the KV is erased from `from` whenever it
    // holds more, which after forget() (another tenant's tokens) it does while `held` is empty.
    if (from < this.seq.nextTokenIndex)
      await this.seq.eraseContextTokenRanges([{ start: from, end: this.seq.nextTokenIndex }]);
    if (from < this.held.length) this.held.length = from;
    const greedy = s.sampling.temperature <= 0;
    const firstScored = tokens.length - positions;
    const items = tokens.map((t, i): ControlledEvaluateInputItem => {
      if (i < firstScored) return t as never;
      const options = greedy
        ? undefined
        : {
            temperature: s.sampling.temperature,
            topK: s.sampling.topK,
            topP: s.sampling.topP,
            minP: s.sampling.minP,
            seed: positionSeed(),
          };
      return [
        t as never,
        {
          generateNext: {
            token: true,
            ...(s.topN > 0 ? { probabilities: true } : {}),
            ...(options ? { options } : {}),
          },
        },
      ];
    });
    const out = await this.overlap.track(tokens.length, () => this.seq.controlledEvaluate(items));
    this.held.push(...tokens);
    const scored: GeneratedToken[] = [];
    for (let i = firstScored; i < tokens.length; i++) {
      const next = out[i]?.next;
      if (next?.token === undefined || next.token === null)
        throw new DsdError('internal_error', `the engine returned no token at position ${i}`);
      scored.push(toGenerated(next.token as number, next.probabilities, s.topN, this.eosId));
    }
    return scored;
  }
}

function toGenerated(
  id: number,
  probabilities: Map<unknown, number> | undefined,
  topN: number,
  eosId: number | undefined,
): GeneratedToken {
  const token: GeneratedToken = { id };
  if (id === eosId) token.endOfGeneration = true;
  if (probabilities === undefined || topN <= 0) return token;
  const top: { id: number; logprob: number }[] = [];
  for (const [t, p] of probabilities) {
    if (top.length >= topN) break;
    top.push({ id: t as number, logprob: Math.log(p) });
  }
  token.top = top;
  const own = probabilities.get(id as never);
  if (own !== undefined) token.logprob = Math.log(own);
  return token;
}
