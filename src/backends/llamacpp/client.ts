import { TenantPrefixIndex } from '../../cache/tenant-prefix-index.js';
import { UpstreamError } from '../../errors.js';
import { HttpUpstream, type HttpUpstreamOptions, isRecord } from '../http.js';
import { openAiJson, openAiStream } from '../openai-passthrough.js';
import type {
  ChatMessage,
  GeneratedToken,
  ModelServer,
  OpenAiRoute,
  PositionScore,
  ProposeRequest,
  ScoreRequest,
  ServerInfo,
} from '../types.js';
import { completionBody, tokenFromProb, tokensOfResult } from './mapping.js';
import type { LlamaCompletionResult, LlamaModels, LlamaProps } from './wire-types.js';

/** A passthrough request's prompt as the client sent it. */
export type PassthroughInput =
  | { kind: 'messages'; messages: ChatMessage[] }
  | { kind: 'text'; text: string }
  | { kind: 'ids'; ids: number[] };

/** A llama.cpp `llama-server` spoken to through its native API (token ids in and out). */
export class LlamaCppServer implements ModelServer {
  readonly kind = 'llamacpp' as const;
  readonly role;
  readonly baseUrl;
  private readonly http: HttpUpstream;
  private bosText: string | undefined;
  /**
   * llama-server has no cache salt: its slots and RAM prompt cache give any request the longest
   * prefix they hold. Which tenant had it compute what decides when a request may reuse them.
   */
  private readonly tenants = new TenantPrefixIndex();

  constructor(options: HttpUpstreamOptions) {
    this.http = new HttpUpstream(options);
    this.role = options.role;
    this.baseUrl = options.baseUrl;
  }

  get counters() {
    return this.http.counters;
  }

  async describe(signal: AbortSignal): Promise<ServerInfo> {
    const [props, models] = await Promise.all([
      this.http.json('GET', '/props', undefined, signal) as Promise<LlamaProps>,
      this.http.json('GET', '/v1/models', undefined, signal) as Promise<LlamaModels>,
    ]);
    this.bosText = props.bos_token;
    const model = models.data?.[0];
    const [bos, eos] = await Promise.all([
      this.specialId(props.bos_token, signal),
      this.specialId(props.eos_token, signal),
    ]);
    return {
      kind: 'llamacpp',
      modelId: model?.id ?? props.model_alias ?? 'llamacpp',
      contextTokens: props.default_generation_settings?.n_ctx ?? model?.meta?.n_ctx_train ?? 2048,
      parallelSlots: Math.max(1, props.total_slots ?? 1),
      bosId: bos,
      eosId: eos,
      vocabSize: model?.meta?.n_vocab,
    };
  }

  private async specialId(text: string | undefined, signal: AbortSignal): Promise<number | undefined> {
    if (text === undefined || text === '') return undefined;
    const ids = await this.tokenizeRaw(text, false, true, signal);
    return ids.length === 1 ? ids[0] : undefined;
  }

  healthy(signal: AbortSignal): Promise<boolean> {
    return this.http.answers('/health', signal);
  }

  tokenize(text: string, addSpecial: boolean, signal: AbortSignal): Promise<number[]> {
    // parse_special as llama-server's own OpenAI endpoints do, so ids match a direct call.
    return this.tokenizeRaw(text, addSpecial, true, signal);
  }

  private async tokenizeRaw(text: string, addSpecial: boolean, parseSpecial: boolean, signal: AbortSignal) {
    const res = await this.http.json(
      'POST',
      '/tokenize',
      { content: text, add_special: addSpecial, parse_special: parseSpecial },
      signal,
    );
    const tokens = isRecord(res) ? res.tokens : undefined;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) {
      throw this.badResponse('/tokenize');
    }
    return tokens as number[];
  }

  async detokenize(ids: readonly number[], signal: AbortSignal): Promise<string> {
    const res = await this.http.json('POST', '/detokenize', { tokens: ids }, signal);
    if (!isRecord(res) || typeof res.content !== 'string') throw this.badResponse('/detokenize');
    return res.content;
  }

  async chatPromptIds(messages: readonly ChatMessage[], signal: AbortSignal): Promise<number[]> {
    const { text, addSpecial } = await this.chatTemplate(messages, signal);
    return this.tokenize(text, addSpecial, signal);
  }

  async chatTemplate(
    messages: readonly ChatMessage[],
    signal: AbortSignal,
  ): Promise<{ text: string; addSpecial: boolean }> {
    const res = await this.http.json('POST', '/apply-template', { messages, add_generation_prompt: true }, signal);
    if (!isRecord(res) || typeof res.prompt !== 'string') throw this.badResponse('/apply-template');
    if (this.bosText === undefined) await this.describe(signal);
    // Templates that write BOS themselves must not get a second one from the tokenizer.
    const templatedBos = this.bosText !== undefined && this.bosText !== '' && res.prompt.startsWith(this.bosText);
    return { text: res.prompt, addSpecial: !templatedBos };
  }

  async propose(r: ProposeRequest): Promise<GeneratedToken[]> {
    const noPromptCache = this.withholdCache(r, r.promptIds);
    const body = completionBody({ prompt: [...r.promptIds], ...r, noPromptCache, stream: false });
    const res = await this.http.json('POST', '/completion', body, r.signal);
    if (!isRecord(res)) throw this.badResponse('/completion');
    const tokens = tokensOfResult(res as LlamaCompletionResult).slice(0, r.maxTokens);
    this.tenants.record(r.cacheSalt ?? '', [...r.promptIds, ...tokens.map((t) => t.id)]);
    return tokens;
  }

  /**
   * Whether a request must not reuse the server's cache: strict isolation, or another tenant had
   * it compute a longer prefix of `ctx` than this one did. Records `ctx` for the request's tenant
   * at once (the server computes it now, whatever happens to the request, and a concurrent
   * request of another tenant must see it); what the server made is recorded when it is known.
   */
  private withholdCache(r: { cacheSalt?: string; noPromptCache?: boolean }, ctx: readonly number[]): boolean {
    const tenant = r.cacheSalt ?? '';
    const withhold = r.noPromptCache === true || !this.tenants.mayReuse(tenant, ctx);
    this.tenants.record(tenant, ctx);
    return withhold;
  }

  /**
   * Tenant isolation for a request passed through as text: whether it must go with
   * `cache_prompt: false`, and a hook that records what it made the server compute. While only
   * this tenant has used the server the request goes at once and its ids are recorded in the
   * background; once another has, they are found first (one /tokenize, or a template and one)
   * so the index can decide.
   */
  async passthroughIsolation(
    tenant: string,
    input: PassthroughInput,
    signal: AbortSignal,
  ): Promise<{ noPromptCache: boolean; done: (outputText: string) => void }> {
    const ids = this.inputIds(input, signal);
    let noPromptCache = false;
    if (this.tenants.seenOtherThan(tenant)) noPromptCache = this.withholdCache({ cacheSalt: tenant }, await ids);
    else ids.then((p) => this.tenants.record(tenant, p)).catch(() => {});
    return {
      noPromptCache,
      done: (outputText) => {
        if (outputText === '') return;
        const after = AbortSignal.timeout(10_000);
        Promise.all([ids, this.tokenizeRaw(outputText, false, false, after)])
          .then(([p, out]) => this.tenants.record(tenant, [...p, ...out]))
          .catch(() => {});
      },
    };
  }

  private inputIds(input: PassthroughInput, signal: AbortSignal): Promise<number[]> {
    switch (input.kind) {
      case 'ids':
        return Promise.resolve(input.ids);
      case 'text':
        return this.tokenize(input.text, true, signal);
      case 'messages':
        return this.chatPromptIds(input.messages, signal);
    }
  }

  async score(r: ScoreRequest): Promise<PositionScore[]> {
    // Longest first: llama-server hands tasks, in order, the idle slot whose cache is most similar,
    // so the longest prompt gets the slot holding last round's longest prompt, and so on down.
    // Measured on the heavy test target: 22 ms per k=1 round instead of 29 ms in ascending order.
    const prompts = r.prompts.map((p) => [...p]).reverse();
    // Every prompt of the batch is a prefix of the longest (the context and its drafts).
    const noPromptCache = this.withholdCache(r, prompts[0] ?? []);
    const body = completionBody({
      prompt: prompts,
      maxTokens: 1,
      sampling: r.sampling,
      topN: r.topN,
      postSamplingProbs: r.postSamplingProbs,
      stream: false,
      noPromptCache,
    });
    const res = await this.http.json('POST', '/completion', body, r.signal);
    // A batch of one comes back as a bare object, not a one-element array.
    const results = Array.isArray(res) ? res : [res];
    if (results.length !== prompts.length || !results.every(isRecord)) throw this.badResponse('/completion (batch)');
    return (results as LlamaCompletionResult[])
      .map((result, j) => {
        const token = tokensOfResult(result)[0];
        if (token === undefined) throw this.badResponse(`/completion (batch position ${j})`);
        const cached = result['timings/cache_n'] ?? result.timings?.cache_n;
        const computed = result['timings/prompt_n'] ?? result.timings?.prompt_n;
        return {
          token,
          ...(cached === undefined ? {} : { cachedPromptTokens: cached }),
          ...(computed === undefined ? {} : { computedPromptTokens: computed }),
        };
      })
      .reverse();
  }

  async *generate(r: ProposeRequest): AsyncGenerator<GeneratedToken> {
    const noPromptCache = this.withholdCache(r, r.promptIds);
    const body = completionBody({ prompt: [...r.promptIds], ...r, noPromptCache, stream: true });
    const made: number[] = [];
    try {
      yield* this.streamTokens(body, r, made);
    } finally {
      this.tenants.record(r.cacheSalt ?? '', [...r.promptIds, ...made]);
    }
  }

  private async *streamTokens(
    body: ReturnType<typeof completionBody>,
    r: ProposeRequest,
    made: number[],
  ): AsyncGenerator<GeneratedToken> {
    let produced = 0;
    for await (const data of this.http.events('/completion', body, r.signal)) {
      let event: LlamaCompletionResult;
      try {
        event = JSON.parse(data) as LlamaCompletionResult;
      } catch {
        throw this.badResponse('/completion (stream)');
      }
      if (isRecord((event as { error?: unknown }).error)) throw this.badResponse('/completion (stream error)');
      const ids = event.tokens ?? [];
      const probs = event.completion_probabilities ?? [];
      for (let i = 0; i < Math.max(ids.length, probs.length) && produced < r.maxTokens; i++) {
        const id = probs[i]?.id ?? ids[i];
        if (typeof id !== 'number') continue;
        produced += 1;
        const token = tokenFromProb(id, probs[i]);
        if (event.stop === true && event.stop_type === 'eos') token.endOfGeneration = true;
        made.push(id);
        yield token;
      }
      if (event.stop === true) return;
    }
  }

  openAiJson(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    return openAiJson(this.http, route, body, signal);
  }

  openAiStream(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<unknown> {
    return openAiStream(this.http, route, body, signal);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private badResponse(where: string): UpstreamError {
    return new UpstreamError(
      'upstream_bad_response',
      `${this.role} llama-server sent an unexpected response from ${where}`,
      {
        role: this.role,
      },
    );
  }
}
