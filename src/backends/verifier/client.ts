import { UpstreamError } from '../../errors.js';
import type { TargetPort } from '../../speculative/engine-types.js';
import { HttpUpstream, type HttpUpstreamOptions, isRecord } from '../http.js';
import type { LinkEncoding } from '../link/link-codec.js';
import { openAiJson, openAiStream } from '../openai-passthrough.js';
import type {
  ChatMessage,
  GeneratedToken,
  ModelServer,
  OpenAiRoute,
  PositionScore,
  ProposeRequest,
  SamplingParams,
  ScoreRequest,
  ServerInfo,
} from '../types.js';
import { LinkClient } from './link-client.js';
import { LinkSession } from './link-session.js';

/** What GET /dsd/verifier answers. */
interface VerifierDescription {
  version?: number;
  model?: string;
  context_tokens?: number;
  bos_id?: number | null;
  eos_id?: number | null;
  vocab_size?: number;
  max_positions?: number;
  chat_template?: 'text' | 'ids';
}

/** A target port bound to one session on the verifier, closed when the generation ends. */
export interface TargetSession extends TargetPort {
  close(): void;
}

/**
 * A `dsd verifier` as the edge's target: tokenizing, templating and its OpenAI API over HTTP,
 * rounds over the link, one session per generation, so only deltas cross the network.
 */
export class VerifierServer implements ModelServer {
  readonly kind = 'verifier' as const;
  readonly role;
  readonly baseUrl;
  private readonly http: HttpUpstream;
  private readonly link: LinkClient;
  private eosId: number | undefined;
  private model: string | undefined;

  constructor(
    private readonly options: HttpUpstreamOptions,
    link: { encoding?: LinkEncoding | undefined } = {},
  ) {
    this.http = new HttpUpstream(options);
    this.role = options.role;
    this.baseUrl = options.baseUrl;
    const url = new URL(`${options.baseUrl}/v1/link`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.link = new LinkClient({
      url: url.toString(),
      apiKey: options.apiKey,
      connectTimeoutMs: options.timeouts.connectTimeoutMs,
      ca: options.ca,
      clientCert: options.clientCert,
      encoding: link.encoding,
    });
  }

  /** HTTP and link traffic together. */
  get counters() {
    const h = this.http.counters;
    const l = this.link.counters;
    return {
      requests: h.requests + l.requests,
      bytesSent: h.bytesSent + l.bytesSent,
      bytesReceived: h.bytesReceived + l.bytesReceived,
    };
  }

  /** The verifier said it is shutting down: no new generation should start on it. */
  get draining(): boolean {
    return this.link.draining;
  }

  /** The link's round trip (WebSocket pings), once connected. */
  get linkRttMs(): number | undefined {
    return this.link.rttMs;
  }

  /** The link's own traffic (rounds and streams), for the bytes-per-token figures. */
  get linkCounters() {
    return this.link.counters;
  }

  async describe(signal: AbortSignal): Promise<ServerInfo> {
    const d = await this.http.json('GET', '/dsd/verifier', undefined, signal);
    if (!isRecord(d) || typeof d.model !== 'string') throw this.badResponse('/dsd/verifier');
    const v = d as VerifierDescription;
    this.eosId = v.eos_id ?? undefined;
    this.model = v.model;
    if (v.chat_template === 'ids') delete this.chatTemplate;
    else
      this.chatTemplate = async (messages, s) => {
        const t = await this.applyTemplate(messages, s);
        if ('ids' in t) throw this.badResponse('/apply-template (ids where text was announced)');
        return t;
      };
    return {
      kind: 'verifier',
      modelId: v.model ?? 'verifier',
      contextTokens: v.context_tokens ?? 2048,
      parallelSlots: v.max_positions ?? 64,
      bosId: v.bos_id ?? undefined,
      eosId: v.eos_id ?? undefined,
      vocabSize: v.vocab_size,
    };
  }

  healthy(signal: AbortSignal): Promise<boolean> {
    return this.http.answers('/health', signal);
  }

  async tokenize(text: string, addSpecial: boolean, signal: AbortSignal): Promise<number[]> {
    const res = await this.http.json('POST', '/tokenize', { content: text, add_special: addSpecial }, signal);
    const tokens = isRecord(res) ? res.tokens : undefined;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw this.badResponse('/tokenize');
    return tokens as number[];
  }

  async detokenize(ids: readonly number[], signal: AbortSignal): Promise<string> {
    const res = await this.http.json('POST', '/detokenize', { tokens: ids }, signal);
    if (!isRecord(res) || typeof res.content !== 'string') throw this.badResponse('/detokenize');
    return res.content;
  }

  /** The template as text; absent when the verifier's target templates into ids only (vLLM). */
  chatTemplate?: (
    messages: readonly ChatMessage[],
    signal: AbortSignal,
  ) => Promise<{ text: string; addSpecial: boolean }>;

  private async applyTemplate(messages: readonly ChatMessage[], signal: AbortSignal) {
    const res = await this.http.json('POST', '/apply-template', { messages }, signal);
    if (isRecord(res) && Array.isArray(res.prompt_ids) && res.prompt_ids.every((t) => Number.isInteger(t)))
      return { ids: res.prompt_ids as number[] };
    if (!isRecord(res) || typeof res.prompt !== 'string') throw this.badResponse('/apply-template');
    return { text: res.prompt, addSpecial: res.add_special !== false };
  }

  async chatPromptIds(messages: readonly ChatMessage[], signal: AbortSignal): Promise<number[]> {
    const t = await this.applyTemplate(messages, signal);
    return 'ids' in t ? t.ids : this.tokenize(t.text, t.addSpecial, signal);
  }

  async propose(): Promise<GeneratedToken[]> {
    throw new UpstreamError('upstream_error', 'a verifier is a target, not a draft', { role: this.role });
  }

  /** A session for one generation: rounds and streams share the verifier's KV for it. */
  openSession(o: { sampling: SamplingParams; topN: number; assisted?: boolean; scope?: string }): TargetSession {
    const assisted = o.assisted ?? true;
    this.open += 1;
    let closed = false;
    const session = new LinkSession(this.link, {
      sampling: o.sampling,
      topN: o.topN,
      eosId: this.eosId,
      timeouts: this.options.timeouts,
      scope: o.scope ?? '',
    });
    return {
      score: (prompts, signal) => {
        const ctx = prompts[0] ?? [];
        const longest = prompts.at(-1) ?? ctx;
        return session.score(ctx, longest.slice(ctx.length), signal);
      },
      generate: (ctx, maxTokens, signal) => session.generate(ctx, maxTokens, signal),
      ...(assisted ? { assist: (ctx, maxTokens, signal) => session.assist(ctx, maxTokens, signal) } : {}),
      close: () => {
        if (!closed) this.open -= 1;
        closed = true;
        session.close();
      },
    };
  }

  private open = 0;

  /** Generations this edge has open on the verifier now (each holds one of its sequences). */
  get openSessions(): number {
    return this.open;
  }

  async score(r: ScoreRequest): Promise<PositionScore[]> {
    const session = this.openSession({ sampling: r.sampling, topN: r.topN, scope: r.cacheSalt ?? '' });
    try {
      return (await session.score(r.prompts, r.signal)).map((token) => ({ token }));
    } finally {
      session.close();
    }
  }

  async *generate(r: ProposeRequest): AsyncGenerator<GeneratedToken> {
    const session = this.openSession({ sampling: r.sampling, topN: r.topN, scope: r.cacheSalt ?? '' });
    try {
      yield* session.generate(r.promptIds, r.maxTokens, r.signal);
    } finally {
      session.close();
    }
  }

  // The verifier's own name, whatever alias the client used at the edge.
  async openAiJson(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    return openAiJson(this.http, route, { ...body, model: await this.modelName(signal) }, signal);
  }

  async *openAiStream(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal) {
    yield* openAiStream(this.http, route, { ...body, model: await this.modelName(signal) }, signal);
  }

  private async modelName(signal: AbortSignal): Promise<string> {
    this.model ??= (await this.describe(signal)).modelId;
    return this.model;
  }

  async close(): Promise<void> {
    await Promise.all([this.http.close(), this.link.close()]);
  }

  private badResponse(where: string): UpstreamError {
    return new UpstreamError('upstream_bad_response', `the verifier sent an unexpected response from ${where}`, {
      role: this.role,
    });
  }
}
