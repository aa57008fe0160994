import type { LinkCounters } from '../backends/http.js';
import type {
  ChatMessage,
  GeneratedToken,
  ModelServer,
  PositionScore,
  ProposeRequest,
  ScoreRequest,
  ServerInfo,
} from '../backends/types.js';
import { DsdError, type UpstreamRole } from '../errors.js';
import { scoredDrafts, type Verdict, verifyByMatch } from '../speculative/acceptance.js';
import { commonPrefix } from '../speculative/common-prefix.js';
import type { EngineSequence, PositionSampling, TargetEngine } from './types.js';

/**
 * Where an evaluation of `ctx` starts on a sequence: after the prefix it already holds, but never
 * past the context's last token, whose logits the evaluation must produce.
 */
function evaluationStart(seq: EngineSequence, ctx: readonly number[]): number {
  return Math.min(commonPrefix(seq.held, ctx), ctx.length - 1);
}

/** The target's own token after `ctx` and after each prefix of `drafts`: one evaluation on `seq`. */
export function scoreDrafts(
  seq: EngineSequence,
  ctx: readonly number[],
  drafts: readonly number[],
  s: PositionSampling,
): Promise<GeneratedToken[]> {
  const from = evaluationStart(seq, ctx);
  const tokens = ctx.slice(from);
  for (const id of drafts) tokens.push(id);
  return seq.evaluate(from, tokens, drafts.length + 1, s);
}

/** What the match rule commits from `drafts` given the target's tokens at each position. */
export function matchVerdict(drafts: readonly number[], scored: readonly GeneratedToken[]): Verdict {
  // An engine that verified fewer drafts than asked scored fewer positions: the rest stay unverified.
  return verifyByMatch(
    scoredDrafts(drafts, scored.length).map((id) => ({ id })),
    scored.map((t) => ({ sampled: t.id })),
  );
}

/** Decodes alone from `prompt` on a sequence, one evaluation per token, until `maxTokens` or EOS. */
export async function* decodeAlone(
  seq: EngineSequence,
  prompt: readonly number[],
  maxTokens: number,
  s: PositionSampling,
  signal: AbortSignal,
): AsyncGenerator<GeneratedToken> {
  if (prompt.length === 0) throw new DsdError('invalid_request', 'the prompt has no tokens');
  if (seq.decode !== undefined) {
    yield* seq.decode(prompt, maxTokens, s, signal);
    return;
  }
  let [token] = await scoreDrafts(seq, prompt, [], s);
  for (let produced = 0; token !== undefined && produced < maxTokens; produced++) {
    if (token.endOfGeneration === true || produced + 1 >= maxTokens) {
      yield token;
      return;
    }
    if (signal.aborted) throw signal.reason;
    // The next step starts before this token is handed on, so what the caller does with it
    // (text, SSE, the socket) overlaps the decode, as llama-server's HTTP thread does.
    const next = seq.evaluate(seq.held.length, [token.id], 1, s);
    try {
      yield token;
    } finally {
      // The sequence goes back to the pool only once no evaluation of it is in flight.
      await next.catch(() => undefined);
    }
    [token] = await next;
  }
}

/**
 * The embedded target as a ModelServer, so the verifier serves the OpenAI API through the same
 * generation path as the edge (validation, stop strings, logprobs, streaming) with no draft:
 * "the target alone" is this engine decoding by itself.
 */
export class EngineServer implements ModelServer {
  readonly kind = 'verifier' as const;
  readonly passthrough = false as const;
  readonly counters: LinkCounters = { requests: 0, bytesSent: 0, bytesReceived: 0 };

  /** The template as text, when the engine has one (so a conversation's earlier turns are reused). */
  readonly chatTemplate?: (messages: readonly ChatMessage[]) => Promise<{ text: string; addSpecial: boolean }>;

  constructor(
    private readonly engine: TargetEngine,
    readonly baseUrl: string,
    /** `draft`: the edge's embedded draft, which proposes; `target`: the verifier's own target. */
    readonly role: UpstreamRole = 'target',
  ) {
    const template = engine.chatTemplate?.bind(engine);
    if (template !== undefined) this.chatTemplate = template;
  }

  async describe(): Promise<ServerInfo> {
    const i = this.engine.info;
    return {
      kind: 'verifier',
      modelId: i.modelName,
      contextTokens: i.contextTokens,
      parallelSlots: i.maxPositions,
      bosId: i.bosId,
      eosId: i.eosId,
      vocabSize: i.vocabSize,
    };
  }

  async healthy(): Promise<boolean> {
    return true;
  }

  async tokenize(text: string, addSpecial: boolean): Promise<number[]> {
    return this.engine.tokenize(text, addSpecial);
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    return this.engine.detokenize(ids);
  }

  async chatPromptIds(messages: readonly ChatMessage[]): Promise<number[]> {
    return this.engine.chatPromptIds(messages);
  }

  /** The embedded draft's proposal: decoding alone from the prompt, in the sequence holding most of it. */
  async propose(r: ProposeRequest): Promise<GeneratedToken[]> {
    if (this.role !== 'draft') throw new DsdError('internal_error', 'a verifier is a target, not a draft');
    // Its probabilities are raw; the rejection rule needs the ones it sampled from. Refusing makes
    // the request go on without this draft (target-only), never inexact.
    if (r.postSamplingProbs)
      throw new DsdError(
        'unsupported_parameter',
        'the embedded draft reports raw probabilities, not post-sampling ones',
      );
    const seq = await this.engine.acquire(r.promptIds, r.signal, r.cacheSalt ?? '');
    const tokens: GeneratedToken[] = [];
    try {
      const s = { sampling: r.sampling, topN: r.topN };
      for await (const t of decodeAlone(seq, r.promptIds, r.maxTokens, s, r.signal)) tokens.push(t);
    } finally {
      seq.release();
    }
    return tokens;
  }

  async score(r: ScoreRequest): Promise<PositionScore[]> {
    const ctx = r.prompts[0];
    const longest = r.prompts.at(-1);
    if (ctx === undefined || longest === undefined || ctx.length === 0)
      throw new DsdError('invalid_request', 'nothing to score');
    const seq = await this.engine.acquire(ctx, r.signal, r.cacheSalt ?? '');
    try {
      const scored = await scoreDrafts(seq, ctx, longest.slice(ctx.length), { sampling: r.sampling, topN: r.topN });
      return scored.map((token) => ({ token }));
    } finally {
      seq.release();
    }
  }

  async *generate(r: ProposeRequest): AsyncGenerator<GeneratedToken> {
    const seq = await this.engine.acquire(r.promptIds, r.signal, r.cacheSalt ?? '');
    try {
      yield* decodeAlone(seq, r.promptIds, r.maxTokens, { sampling: r.sampling, topN: r.topN }, r.signal);
    } finally {
      seq.release();
    }
  }

  async openAiJson(): Promise<unknown> {
    throw notGeneratedTokenByToken();
  }

  // biome-ignore lint/correctness/useYield: it refuses before producing anything
  async *openAiStream(): AsyncGenerator<unknown> {
    throw notGeneratedTokenByToken();
  }

  async close(): Promise<void> {}
}

function notGeneratedTokenByToken(): DsdError {
  return new DsdError(
    'unsupported_parameter',
    'the verifier serves requests it generates token by token; this one needs a feature it does not have ' +
      '(n > 1, tools, response_format, logit_bias, penalties, suffix or several prompts)',
  );
}
