import type { Express, Request, Response } from 'express';
import { chatMlPrompt } from '../backends/chatml.js';
import { EmulatedServer, num, sleep } from './emulated-server.js';
import { type EmulatedSampling, type EmulatedToken, emulateGeneration } from './generation.js';
import { handleOpenAi } from './openai-emulation.js';
import { EOS_ID } from './word-tokenizer.js';

type Body = Record<string, unknown>;

/** vLLM's default `--max-logprobs`. */
const MAX_LOGPROBS = 20;

/**
 * An in-process HTTP server speaking vLLM's OpenAI API as described in UPSTREAM-APIS.md §2:
 * multi-prompt `/v1/completions` (one choice per prompt, `token_id:<id>` logprob keys with
 * `return_tokens_as_token_ids`, raw logprobs, sampled token first in `top_logprobs`),
 * `/tokenize` with text or messages, `/detokenize`, `/v1/models` with `max_model_len`. Its errors
 * carry the messages and fields a real vLLM 0.32.0 sends (test/fixtures/vllm/error-*.json).
 */
export class VllmEmulator extends EmulatedServer {
  protected routes(app: Express): void {
    app.get('/health', (_req, res) => void res.status(200).end());
    app.get('/v1/models', (_req, res) => {
      res.json({
        object: 'list',
        data: [
          {
            id: this.options.alias,
            object: 'model',
            created: 0,
            owned_by: 'vllm',
            root: this.options.alias,
            max_model_len: this.contextTokens,
          },
        ],
      });
    });
    app.post('/tokenize', (req, res) => {
      const b = req.body as Body;
      const tokens = Array.isArray(b.messages)
        ? this.tok.encode(chatMlPrompt(b.messages as { role: string; content: unknown }[]), {
            addBos: true,
            parseSpecial: true,
          })
        : this.tok.encode(String(b.prompt ?? ''), { addBos: b.add_special_tokens !== false, parseSpecial: true });
      res.json({ count: tokens.length, max_model_len: this.contextTokens, tokens });
    });
    app.post('/detokenize', (req, res) => {
      const tokens = (req.body as Body).tokens;
      res.json({ prompt: Array.isArray(tokens) ? this.tok.decode(tokens as number[]) : '' });
    });
    app.post('/v1/completions', (req, res) => this.completions(req, res));
    app.post('/v1/chat/completions', (req, res) => {
      if (!this.checkModel(req, res)) return;
      void handleOpenAi({
        req,
        res,
        route: 'chat',
        model: this.options.model,
        alias: this.options.alias,
        contextTokens: this.contextTokens,
        latency: this.latency,
        sampling: (b) => this.sampling(b),
      });
    });
  }

  protected sampling(b: Body): EmulatedSampling {
    const topK = num(b.top_k, -1);
    return {
      temperature: num(b.temperature, 1),
      topP: num(b.top_p, 1),
      topK: Math.max(topK, 0),
      minP: num(b.min_p, 0),
      seed: typeof b.seed === 'number' ? b.seed : undefined,
    };
  }

  private checkModel(req: Request, res: Response): boolean {
    const model = (req.body as Body).model;
    if (model === this.options.alias) return true;
    res.status(404).json({
      error: {
        message: `The model \`${String(model)}\` does not exist. Valid aliases: ${this.options.alias}.`,
        type: 'NotFoundError',
        param: 'model',
        code: 404,
      },
    });
    return false;
  }

  private prompts(p: unknown): number[][] | undefined {
    const isIds = (x: unknown): x is number[] => Array.isArray(x) && x.every((t) => Number.isInteger(t));
    if (typeof p === 'string') return [this.tok.encode(p, { addBos: true, parseSpecial: true })];
    if (isIds(p)) return [p];
    if (Array.isArray(p) && p.length > 0 && p.every(isIds)) return p as number[][];
    return undefined;
  }

  /** What a real vLLM refuses with a 400 (default `--max-logprobs` 20, prompts over the context). */
  private refusal(b: Body, prompts: number[][] | undefined): { message: string; param: string } | undefined {
    if (prompts === undefined || prompts.some((p) => p.some((t) => !this.tok.has(t))))
      return { message: 'invalid prompt', param: 'prompt' };
    const logprobs = num(b.logprobs, -1);
    if (logprobs > MAX_LOGPROBS) {
      const message = `Requested sample logprobs of ${logprobs}, which is greater than max allowed: ${MAX_LOGPROBS}`;
      return { message: `${message} (parameter=logprobs, value=${logprobs})`, param: 'logprobs' };
    }
    const longest = Math.max(...prompts.map((p) => p.length));
    if (longest > this.contextTokens) {
      const message =
        `This model's maximum context length is ${this.contextTokens} tokens. However, your prompt contains ` +
        `${longest} input tokens, which exceeds this limit even without any output tokens.`;
      return { message, param: 'input_tokens' };
    }
    return undefined;
  }

  private async completions(req: Request, res: Response): Promise<void> {
    if (!this.checkModel(req, res)) return;
    const b = req.body as Body;
    this.stats.lastCompletionBody = b;
    const prompts = this.prompts(b.prompt);
    const refusal = this.refusal(b, prompts);
    if (refusal !== undefined || prompts === undefined) {
      res.status(400).json({ error: { type: 'BadRequestError', code: 400, ...refusal } });
      return;
    }
    if (b.stream === true) {
      await handleOpenAi({
        req,
        res,
        route: 'completions',
        model: this.options.model,
        alias: this.options.alias,
        contextTokens: this.contextTokens,
        latency: this.latency,
        sampling: (x) => this.sampling(x),
      });
      return;
    }
    const n = num(b.logprobs, -1);
    const gen = { maxTokens: num(b.max_tokens, 16), contextTokens: this.contextTokens, sampling: this.sampling(b) };
    await sleep(this.latency.perRequestMs);
    let steps = 0;
    const choices = prompts.map((prompt, index) => {
      const tokens: EmulatedToken[] = [...emulateGeneration(this.options.model, prompt, gen)];
      steps = Math.max(steps, tokens.length);
      return this.choice(index, tokens, n, b.return_tokens_as_token_ids === true, gen.maxTokens);
    });
    await sleep(this.latency.perTokenMs * steps + this.latency.perPositionMs * prompts.length);
    const completion = choices.reduce((s, c) => s + c.token_ids.length, 0);
    const promptTokens = prompts.reduce((s, p) => s + p.length, 0);
    res.json({
      id: `cmpl-${Date.now()}`,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: this.options.alias,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion },
    });
  }

  private choice(index: number, tokens: EmulatedToken[], n: number, asIds: boolean, maxTokens: number) {
    const key = (id: number) => (asIds ? `token_id:${id}` : this.tok.piece(id));
    const clamp = (lp: number) => Math.max(lp, -9999);
    const logprobs =
      n < 0
        ? null
        : {
            tokens: tokens.map((t) => key(t.id)),
            token_logprobs: tokens.map((t) => clamp(Math.log(t.raw.find((r) => r.id === t.id)?.prob ?? 0))),
            // The sampled token first, then the top-n (so n or n+1 entries), as vLLM does.
            top_logprobs: tokens.map((t) => {
              const entries: [string, number][] = [
                [key(t.id), clamp(Math.log(t.raw.find((r) => r.id === t.id)?.prob ?? 0))],
              ];
              for (const r of t.raw.slice(0, n)) if (r.id !== t.id) entries.push([key(r.id), clamp(Math.log(r.prob))]);
              return Object.fromEntries(entries);
            }),
            text_offset: tokens.map(() => 0),
          };
    const ended = tokens.at(-1)?.id === EOS_ID;
    return {
      index,
      text: this.tok.decode(tokens.map((t) => t.id)),
      logprobs,
      finish_reason: ended ? 'stop' : tokens.length >= maxTokens ? 'length' : 'stop',
      stop_reason: null,
      token_ids: tokens.map((t) => t.id),
      prompt_logprobs: null,
      prompt_token_ids: null,
    };
  }
}
