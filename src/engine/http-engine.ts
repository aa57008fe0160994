import { type ConnectOptions, connectServer } from '../backends/detect.js';
import type { ChatMessage, ModelServer, ServerInfo } from '../backends/types.js';
import type { GeneratedToken } from '../speculative/types.js';
import { type EvaluationOverlap, PooledEngine, PooledState, SequencePool } from './sequence-pool.js';
import { TokenBytes } from './token-bytes.js';
import type { EngineInfo, EngineSequence, PositionSampling, TargetEngine } from './types.js';

/**
 * A target behind its own HTTP API on loopback (llama-server or vLLM, through the edge's own
 * adapters), so that the k+1 prompt lists of a round and the context never cross the WAN: the
 * verifier scores each round with one batched request next to the server, whose prefix cache
 * (llama.cpp slots, vLLM prefix caching) holds the context. Sequences here are only the context
 * each generation holds; the KV is the server's.
 */
export async function connectHttpEngine(
  o: Omit<ConnectOptions, 'role'> & { sequences: number },
  signal: AbortSignal,
): Promise<TargetEngine> {
  const server = await connectServer({ ...o, role: 'target' }, signal);
  const info = await server.describe(signal);
  return new HttpEngine(server, info, o.sequences, o.url);
}

class HttpEngine extends PooledEngine<HttpSequence> implements TargetEngine {
  readonly info: EngineInfo;
  protected readonly pool: SequencePool<HttpSequence>;
  private readonly bytes = new TokenBytes(this);
  readonly chatTemplate?: (messages: readonly ChatMessage[]) => Promise<{ text: string; addSpecial: boolean }>;

  constructor(
    private readonly server: ModelServer,
    info: ServerInfo,
    sequences: number,
    url: string,
  ) {
    super();
    this.info = {
      modelName: info.modelId,
      contextTokens: info.contextTokens,
      bosId: info.bosId,
      eosId: info.eosId,
      vocabSize: info.vocabSize ?? 1 << 30,
      sequences,
      maxPositions: info.parallelSlots,
      build: 'http',
      engine: 'http',
      backend: 'http',
      device: url,
    };
    this.pool = new SequencePool(
      Array.from({ length: sequences }, () => new HttpSequence(server, this.bytes, this.overlap)),
    );
    const template = server.chatTemplate?.bind(server);
    if (template !== undefined) this.chatTemplate = (m) => template(m, AbortSignal.timeout(30_000));
  }

  tokenize(text: string, addSpecial: boolean): Promise<number[]> {
    return this.server.tokenize(text, addSpecial, AbortSignal.timeout(30_000));
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.server.detokenize(ids, AbortSignal.timeout(30_000));
  }

  chatPromptIds(messages: readonly ChatMessage[]): Promise<number[]> {
    return this.server.chatPromptIds(messages, AbortSignal.timeout(30_000));
  }

  tokenBytes(id: number): Promise<Uint8Array> {
    return this.bytes.of(id);
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

/** A generation's context on a target that keeps the KV itself. */
class HttpSequence extends PooledState implements EngineSequence {
  constructor(
    private readonly server: ModelServer,
    private readonly bytes: TokenBytes,
    private readonly overlap: EvaluationOverlap,
  ) {
    super();
  }

  /** The tenant's scope as the target's own cache salt (vLLM), so its prefix cache is scoped too. */
  private salt(): { cacheSalt?: string } {
    return this.owner === '' ? {} : { cacheSalt: this.owner };
  }

  async evaluate(
    from: number,
    tokens: readonly number[],
    positions: number,
    s: PositionSampling,
  ): Promise<GeneratedToken[]> {
    const ctx = [...this.held.slice(0, from), ...tokens];
    const first = ctx.length - positions + 1;
    const prompts = Array.from({ length: positions }, (_, i) => ctx.slice(0, first + i));
    const scored = await this.overlap.track(positions, () =>
      this.server.score({
        prompts,
        sampling: s.sampling,
        topN: s.topN,
        postSamplingProbs: false,
        signal: AbortSignal.timeout(60_000),
        ...this.salt(),
      }),
    );
    this.held.length = 0;
    for (const id of ctx) this.held.push(id);
    return scored.map((p) => this.learn(p.token));
  }

  async *decode(
    prompt: readonly number[],
    maxTokens: number,
    s: PositionSampling,
    signal: AbortSignal,
  ): AsyncGenerator<GeneratedToken> {
    this.held.length = 0;
    for (const id of prompt) this.held.push(id);
    const stream = this.server.generate({
      promptIds: prompt,
      maxTokens,
      sampling: s.sampling,
      topN: s.topN,
      postSamplingProbs: false,
      signal,
      ...this.salt(),
    });
    for await (const token of stream) {
      this.held.push(token.id);
      yield this.learn(token);
    }
  }

  /** llama-server tells each token's bytes in band: keep them for the link. */
  private learn(token: GeneratedToken): GeneratedToken {
    if (token.bytes !== undefined) this.bytes.learn(token.id, token.bytes);
    return token;
  }
}
