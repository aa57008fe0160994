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

/** A llama.cpp `llama-server` spoken to through its native API (token ids in and out). */
export class LlamaCppServer implements ModelServer {
  readonly kind = 'llamacpp' as const;
  readonly role;
  readonly baseUrl;
  private readonly http: HttpUpstream;
  private bosText: string | undefined;

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
    const body = completionBody({ prompt: [...r.promptIds], ...r, stream: false });
    const res = await this.http.json('POST', '/completion', body, r.signal);
    if (!isRecord(res)) throw this.badResponse('/completion');
    return tokensOfResult(res as LlamaCompletionResult).slice(0, r.maxTokens);
  }

  async score(r: ScoreRequest): Promise<PositionScore[]> {
    // Longest first: llama-server hands tasks, in order, the idle slot whose cache is most similar,
    // so the longest prompt gets the slot holding last round's longest prompt, and so on down.
    // Measured on the heavy test target: 22 ms per k=1 round instead of 29 ms in ascending order.
    const prompts = r.prompts.map((p) => [...p]).reverse();
    const body = completionBody({
      prompt: prompts,
      maxTokens: 1,
      sampling: r.sampling,
      topN: r.topN,
      postSamplingProbs: r.postSamplingProbs,
      stream: false,
      noPromptCache: r.noPromptCache,
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
    const body = completionBody({ prompt: [...r.promptIds], ...r, stream: true });
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
