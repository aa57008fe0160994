import { chatMlPrompt } from '../../backends/chatml.js';
import type { ChatMessage } from '../../backends/types.js';
import type { GeneratedToken } from '../../speculative/types.js';
import { PooledEngine, PooledState, SequencePool, withBos } from '../sequence-pool.js';
import { TokenBytes } from '../token-bytes.js';
import type { EngineInfo, EngineSequence, PositionSampling, TargetEngine } from '../types.js';
import { EvalBatcher } from './eval-batcher.js';
import type { EngineHandle, NativeApi } from './native-library.js';

/**
 * A shorter prefix in an idle sequence is not worth scattering the busy sequence ids for: a
 * generation on a stray id can cost its batch a pass every step (SequencePool), and prompts that
 * merely start alike ("Once upon a time") share fewer tokens than this; a conversation's next turn
 * or a repeated system prompt shares more.
 */
const COMPACT_BELOW_TOKENS = 16;

/** Positions one in-process evaluation may score (the window cap the edge sees). */
export const MAX_NATIVE_POSITIONS = 64;

/** How the native engine loads its model. */
export interface NativeEngineOptions {
  modelPath: string;
  threads: number;
  /** Context tokens per sequence (default: the model's trained context). */
  contextTokens?: number | undefined;
  sequences: number;
  /** Layers offloaded to the GPU (0 on the CPU; -1 all). */
  gpuLayers: number;
  /** The backend the variant runs on, for EngineInfo. */
  backend: EngineInfo['backend'];
}

/**
 * The target in-process through dsd's own shim over libllama (native/dsd-eval.c via koffi): each
 * evaluation of every waiting sequence is one native call on a worker thread.
 */
export function openNativeEngine(api: NativeApi, o: NativeEngineOptions): TargetEngine {
  const handle = api.open({
    path: o.modelPath,
    ctxPerSeq: o.contextTokens ?? 0,
    sequences: o.sequences,
    threads: o.threads,
    gpuLayers: o.gpuLayers,
  });
  return new NativeEngine(api, handle, o);
}

class NativeEngine extends PooledEngine<NativeSequence> implements TargetEngine {
  readonly info: EngineInfo;
  protected readonly pool: SequencePool<NativeSequence>;
  private readonly bytes = new TokenBytes(this);
  private closed = false;

  constructor(
    private readonly api: NativeApi,
    private readonly handle: EngineHandle,
    o: NativeEngineOptions,
  ) {
    super();
    const bos = api.bos(handle);
    const eos = api.eos(handle);
    const contextTokens = api.nCtxSeq(handle);
    this.info = {
      modelName: o.modelPath.split(/[\\/]/).pop() ?? o.modelPath,
      contextTokens,
      bosId: bos >= 0 ? bos : undefined,
      eosId: eos >= 0 ? eos : undefined,
      vocabSize: api.nVocab(handle),
      sequences: o.sequences,
      maxPositions: MAX_NATIVE_POSITIONS,
      build: api.variant === 'cpu' ? 'local' : 'prebuilt',
      engine: 'native',
      backend: o.backend,
      device: api.device(handle),
    };
    const batcher = new EvalBatcher(api, handle, this.overlap);
    this.pool = new SequencePool(
      Array.from({ length: o.sequences }, (_, i) => new NativeSequence(i, contextTokens, batcher)),
      { compactBelowTokens: COMPACT_BELOW_TOKENS },
    );
  }

  async tokenize(text: string, addSpecial: boolean): Promise<number[]> {
    const ids = this.api.tokenize(this.handle, text, false);
    return withBos(ids, this.info.bosId, addSpecial);
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    return this.api.detokenize(this.handle, ids);
  }

  tokenBytes(id: number): Promise<Uint8Array> {
    return this.bytes.of(id);
  }

  async chatTemplate(messages: readonly ChatMessage[]): Promise<{ text: string; addSpecial: boolean }> {
    return { text: chatMlPrompt(messages), addSpecial: true };
  }

  async chatPromptIds(messages: readonly ChatMessage[]): Promise<number[]> {
    return this.tokenize(chatMlPrompt(messages), true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A decode in flight holds the context: wait for the batcher to go idle before freeing it.
    await this.batcherIdle();
    this.api.close(this.handle);
  }

  private async batcherIdle(): Promise<void> {
    for (let i = 0; i < 600 && this.pool.load().busy > 0; i++) await new Promise((r) => setTimeout(r, 50));
  }
}

/** One KV sequence of the native context and the tokens it holds. */
class NativeSequence extends PooledState implements EngineSequence {
  constructor(
    private readonly id: number,
    private readonly contextTokens: number,
    private readonly batcher: EvalBatcher,
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
    // The shim erases the KV from `from` on, which after forget() (another tenant's tokens) is 0.
    if (from < this.held.length) this.held.length = from;
    try {
      const scored = await this.batcher.submit({
        seq: this.id,
        keep: from,
        tokens,
        outputs: positions,
        s,
        contextTokens: this.contextTokens,
      });
      // The batcher may verify fewer drafts than asked (shapeBatch): the ones it cut are not held.
      const evaluated = tokens.length - (positions - scored.length);
      for (let i = 0; i < evaluated; i++) this.held.push(tokens[i] as number);
      return scored;
    } catch (err) {
      this.forget();
      throw err;
    }
  }
}
