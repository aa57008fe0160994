import type { Express, Request, Response } from 'express';
import { chatMlPrompt } from '../backends/chatml.js';
import { EmulatedServer, type EmulatorOptions, num, sleep } from './emulated-server.js';
import { type EmulatedSampling, type EmulatedStop, type EmulatedToken, emulateGeneration } from './generation.js';
import { pickFields, probEntry } from './llamacpp-wire.js';
import { handleOpenAi } from './openai-emulation.js';

/** Options of an emulated llama-server. */
export interface LlamaEmulatorOptions extends EmulatorOptions {
  slots?: number;
}

export type { EmulatedLatency, EmulatorStats } from './emulated-server.js';

type Body = Record<string, unknown>;

/**
 * An in-process HTTP server speaking llama-server's API (native `/completion`, `/tokenize`,
 * `/detokenize`, `/apply-template`, `/props`, OpenAI `/v1/*`), backed by an n-gram model.
 * Shapes follow the recorded responses in shared/reference/llama-server.
 */
export class LlamaEmulator extends EmulatedServer {
  private readonly slots: number;
  /** Test hook: rewrites (or delays) what /tokenize answers for a text. */
  onTokenize: ((text: string, ids: number[]) => number[] | Promise<number[]>) | undefined;

  constructor(options: LlamaEmulatorOptions) {
    super(options);
    this.slots = options.slots ?? 16;
  }

  protected routes(app: Express): void {
    app.get('/health', (_req, res) => void res.json({ status: 'ok' }));
    app.get('/props', (_req, res) => void res.json(this.props()));
    app.get('/v1/models', (_req, res) => void res.json(this.models()));
    app.post('/tokenize', async (req, res) => {
      const b = req.body as Body;
      const text = String(b.content ?? '');
      const encoded = this.tok.encode(text, {
        addBos: b.add_special === true,
        parseSpecial: b.parse_special !== false,
      });
      const ids = this.onTokenize === undefined ? encoded : await this.onTokenize(text, encoded);
      res.json({ tokens: b.with_pieces === true ? ids.map((id) => ({ id, piece: this.tok.piece(id) })) : ids });
    });
    app.post('/detokenize', (req, res) => {
      const tokens = (req.body as Body).tokens;
      res.json({ content: Array.isArray(tokens) ? this.tok.decode(tokens as number[], true) : '' });
    });
    app.post('/apply-template', (req, res) => {
      res.json({ prompt: chatMlPrompt(((req.body as Body).messages ?? []) as { role: string; content: unknown }[]) });
    });
    app.post('/completion', (req, res) => this.completion(req, res));
    app.post('/v1/completions', (req, res) => this.openAi(req, res, 'completions'));
    app.post('/v1/chat/completions', (req, res) => this.openAi(req, res, 'chat'));
  }

  private props() {
    return {
      default_generation_settings: {
        n_ctx: this.contextTokens,
        params: { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05 },
      },
      total_slots: this.slots,
      model_alias: this.options.alias,
      model_path: `demo/${this.options.alias}.ngram`,
      bos_token: '<s>',
      eos_token: '</s>',
      chat_template: 'chatml',
      build_info: 'dsd-demo',
    };
  }

  private models() {
    const meta = {
      vocab_type: 1,
      n_vocab: this.tok.size,
      n_ctx_train: this.contextTokens,
      n_embd: 0,
      n_params: 0,
      size: 0,
    };
    return {
      object: 'list',
      data: [{ id: this.options.alias, object: 'model', created: 0, owned_by: 'llamacpp', meta }],
    };
  }

  protected sampling(b: Body): EmulatedSampling {
    return {
      temperature: num(b.temperature, 0.8),
      topK: num(b.top_k, 40),
      topP: num(b.top_p, 0.95),
      minP: num(b.min_p, 0.05),
      seed: typeof b.seed === 'number' && b.seed >= 0 && b.seed < 0xffffffff ? b.seed : undefined,
    };
  }

  /** Ids of a prompt, or an error message llama-server would give. */
  private promptIds(p: unknown, addSpecial: boolean): number[] | string {
    if (typeof p === 'string') return this.tok.encode(p, { addBos: addSpecial, parseSpecial: true });
    if (Array.isArray(p) && p.every((t) => typeof t === 'number')) {
      return p.every((t) => this.tok.has(t)) ? (p as number[]) : 'Prompt contains invalid tokens';
    }
    return '"prompt" must be a string or an array of tokens';
  }

  private invalid(res: Response, message: string): void {
    res.status(400).json({ error: { code: 400, message, type: 'invalid_request_error' } });
  }

  private async completion(req: Request, res: Response): Promise<void> {
    const b = req.body as Body;
    this.stats.lastCompletionBody = b;
    const batch = Array.isArray(b.prompt) && b.prompt.length > 0 && b.prompt.every(Array.isArray);
    const prompts = (batch ? (b.prompt as unknown[]) : [b.prompt]).map((p) => this.promptIds(p, true));
    const bad = prompts.find((p): p is string => typeof p === 'string');
    if (bad !== undefined) return this.invalid(res, bad);
    const ids = prompts as number[][];
    if (ids.some((p) => p.length >= this.contextTokens))
      return this.invalid(res, 'the request exceeds the available context size');
    const maxTokens = num(b.n_predict, -1) < 0 ? this.contextTokens : num(b.n_predict, -1);
    const gen = { maxTokens, contextTokens: this.contextTokens, sampling: this.sampling(b) };
    const nProbs = num(b.n_probs, 0);
    const post = b.post_sampling_probs === true;
    const entry = (t: EmulatedToken) => probEntry(this.tok, t, nProbs, post);
    await sleep(this.latency.perRequestMs);
    if (b.stream === true) return this.streamCompletion(res, ids[0] as number[], gen, entry);
    const results = ids.map((prompt, index) => {
      const tokens: EmulatedToken[] = [];
      const it = emulateGeneration(this.options.model, prompt, gen);
      let step = it.next();
      for (; !step.done; step = it.next()) tokens.push(step.value);
      return this.result({
        index,
        prompt,
        tokens,
        stop: step.value,
        nProbs,
        entry,
        returnTokens: b.return_tokens === true,
      });
    });
    await sleep(
      this.latency.perTokenMs * Math.max(...results.map((r) => r.tokens_predicted as number)) +
        this.latency.perPositionMs * ids.length,
    );
    const picked = results.map((r) => pickFields(r, b.response_fields));
    res.json(batch ? picked : picked[0]);
  }

  private result(o: {
    index: number;
    prompt: number[];
    tokens: EmulatedToken[];
    stop: EmulatedStop;
    nProbs: number;
    entry: (t: EmulatedToken) => unknown;
    returnTokens: boolean;
  }): Record<string, unknown> {
    const ids = o.tokens.map((t) => t.id);
    const result: Record<string, unknown> = {
      index: o.index,
      content: this.tok.decode(ids),
      tokens: o.returnTokens ? ids : [],
      id_slot: o.index % this.slots,
      stop: true,
      model: this.options.alias,
      tokens_predicted: ids.length,
      tokens_evaluated: o.prompt.length,
      stop_type: o.stop,
      stopping_word: '',
      tokens_cached: o.prompt.length + ids.length,
      timings: { cache_n: 0, prompt_n: o.prompt.length, prompt_ms: 0, predicted_n: ids.length, predicted_ms: 0 },
    };
    if (o.nProbs > 0) result.completion_probabilities = o.tokens.map(o.entry);
    return result;
  }

  private async streamCompletion(
    res: Response,
    prompt: number[],
    gen: Parameters<typeof emulateGeneration>[2],
    entry: (t: EmulatedToken) => unknown,
  ) {
    res.setHeader('content-type', 'text/event-stream');
    const it = emulateGeneration(this.options.model, prompt, gen);
    let n = 0;
    let step = it.next();
    for (; !step.done; step = it.next()) {
      if (res.destroyed) return;
      await sleep(this.latency.perTokenMs);
      n += 1;
      const t = step.value;
      const event = {
        index: 0,
        content: this.tok.decode([t.id]),
        tokens: [t.id],
        stop: false,
        id_slot: -1,
        tokens_predicted: n,
        tokens_evaluated: prompt.length,
        completion_probabilities: [entry(t)],
      };
      res.write(`data: ${JSON.stringify(event)}\n\n`);
    }
    const last = {
      index: 0,
      content: '',
      tokens: [],
      stop: true,
      stop_type: step.value,
      model: this.options.alias,
      tokens_predicted: n,
      tokens_evaluated: prompt.length,
      timings: { cache_n: 0, prompt_n: prompt.length, predicted_n: n },
    };
    res.end(`data: ${JSON.stringify(last)}\n\n`);
  }

  private async openAi(req: Request, res: Response, route: 'chat' | 'completions'): Promise<void> {
    await handleOpenAi({
      req,
      res,
      route,
      model: this.options.model,
      alias: this.options.alias,
      contextTokens: this.contextTokens,
      latency: this.latency,
      sampling: (b) => this.sampling(b),
    });
  }
}
