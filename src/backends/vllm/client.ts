import { UpstreamError } from '../../errors.js';
import { HttpUpstream, type HttpUpstreamOptions } from '../http.js';
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
import { tokensOfChoice, vllmCompletionBody } from './mapping.js';
import type { VllmCompletionResponse, VllmModels, VllmTokenizeResponse } from './wire-types.js';

/** Options for a vLLM server: where it is, and the served model name when already known. */
export interface VllmServerOptions extends HttpUpstreamOptions {
  model?: string | undefined;
}

/** A vLLM OpenAI server spoken to with id prompts and `token_id:` logprobs. */
export class VllmServer implements ModelServer {
  readonly kind = 'vllm' as const;
  readonly role;
  readonly baseUrl;
  private readonly http: HttpUpstream;
  private model: string | undefined;

  constructor(options: VllmServerOptions) {
    this.http = new HttpUpstream(options);
    this.role = options.role;
    this.baseUrl = options.baseUrl;
    this.model = options.model;
  }

  get counters() {
    return this.http.counters;
  }

  async describe(signal: AbortSignal): Promise<ServerInfo> {
    const models = (await this.http.json('GET', '/v1/models', undefined, signal)) as VllmModels;
    const entry = models.data?.find((m) => m.id === this.model) ?? models.data?.[0];
    if (entry?.id === undefined) throw this.badResponse('/v1/models');
    this.model ??= entry.id;
    const withBos = await this.tokenizeText('', true, signal).catch(() => []);
    return {
      kind: 'vllm',
      modelId: this.model,
      contextTokens: entry.max_model_len ?? 4096,
      // vLLM batches any number of prompts (VLLM_MAX_COMPLETION_PROMPTS, default 1024).
      parallelSlots: 1024,
      bosId: withBos.length === 1 ? withBos[0] : undefined,
      eosId: undefined,
      vocabSize: undefined,
    };
  }

  private async modelName(signal: AbortSignal): Promise<string> {
    if (this.model === undefined) await this.describe(signal);
    return this.model as string;
  }

  healthy(signal: AbortSignal): Promise<boolean> {
    return this.http.answers('/v1/models', signal);
  }

  tokenize(text: string, addSpecial: boolean, signal: AbortSignal): Promise<number[]> {
    return this.tokenizeText(text, addSpecial, signal);
  }

  private async tokenizeText(text: string, addSpecial: boolean, signal: AbortSignal): Promise<number[]> {
    const model = await this.modelName(signal);
    const res = await this.http.json(
      'POST',
      '/tokenize',
      { model, prompt: text, add_special_tokens: addSpecial },
      signal,
    );
    return this.tokensOf(res, '/tokenize');
  }

  async detokenize(ids: readonly number[], signal: AbortSignal): Promise<string> {
    const model = await this.modelName(signal);
    const res = (await this.http.json('POST', '/detokenize', { model, tokens: ids }, signal)) as { prompt?: unknown };
    if (typeof res?.prompt !== 'string') throw this.badResponse('/detokenize');
    return res.prompt;
  }

  async chatPromptIds(messages: readonly ChatMessage[], signal: AbortSignal): Promise<number[]> {
    const model = await this.modelName(signal);
    const res = await this.http.json('POST', '/tokenize', { model, messages, add_generation_prompt: true }, signal);
    return this.tokensOf(res, '/tokenize (messages)');
  }

  async propose(r: ProposeRequest): Promise<GeneratedToken[]> {
    const model = await this.modelName(r.signal);
    const body = vllmCompletionBody({
      model,
      prompt: [...r.promptIds],
      maxTokens: r.maxTokens,
      sampling: r.sampling,
      topN: r.topN,
      stream: false,
      cacheSalt: r.cacheSalt,
    });
    const res = (await this.http.json('POST', '/v1/completions', body, r.signal)) as VllmCompletionResponse;
    const choice = res?.choices?.[0];
    if (choice === undefined) throw this.badResponse('/v1/completions');
    return tokensOfChoice(choice).slice(0, r.maxTokens);
  }

  async score(r: ScoreRequest): Promise<PositionScore[]> {
    const model = await this.modelName(r.signal);
    const prompts = r.prompts.map((p) => [...p]);
    const body = vllmCompletionBody({
      model,
      prompt: prompts,
      maxTokens: 1,
      sampling: r.sampling,
      topN: r.topN,
      stream: false,
      cacheSalt: r.cacheSalt,
    });
    const res = (await this.http.json('POST', '/v1/completions', body, r.signal)) as VllmCompletionResponse;
    const choices = res?.choices;
    if (!Array.isArray(choices) || choices.length !== prompts.length) throw this.badResponse('/v1/completions (batch)');
    const byIndex = [...choices].sort((a, b) => a.index - b.index);
    return byIndex.map((choice, j) => {
      const token = tokensOfChoice(choice)[0];
      if (token === undefined) throw this.badResponse(`/v1/completions (batch position ${j})`);
      return { token };
    });
  }

  async *generate(r: ProposeRequest): AsyncGenerator<GeneratedToken> {
    const model = await this.modelName(r.signal);
    const body = vllmCompletionBody({
      model,
      prompt: [...r.promptIds],
      maxTokens: r.maxTokens,
      sampling: r.sampling,
      topN: r.topN,
      stream: true,
      cacheSalt: r.cacheSalt,
    });
    for await (const chunk of openAiStream(
      this.http,
      'completions',
      body as unknown as Record<string, unknown>,
      r.signal,
    )) {
      const choice = (chunk as VllmCompletionResponse).choices?.[0];
      if (choice === undefined) continue;
      yield* tokensOfChoice(choice);
    }
  }

  async openAiJson(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    return openAiJson(this.http, route, { ...body, model: await this.modelName(signal) }, signal);
  }

  async *openAiStream(route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal): AsyncGenerator<unknown> {
    yield* openAiStream(this.http, route, { ...body, model: await this.modelName(signal) }, signal);
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private tokensOf(res: unknown, where: string): number[] {
    const tokens = (res as VllmTokenizeResponse | null)?.tokens;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t))) throw this.badResponse(where);
    return tokens;
  }

  private badResponse(where: string): UpstreamError {
    return new UpstreamError(
      'upstream_bad_response',
      `${this.role} vLLM server sent an unexpected response from ${where}`,
      {
        role: this.role,
      },
    );
  }
}
