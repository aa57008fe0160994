import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { chatMlPrompt } from '../backends/chatml.js';
import type { EmulatedLatency } from './emulated-server.js';
import { type EmulatedSampling, type EmulatedToken, emulateGeneration } from './generation.js';
import type { LanguageModel } from './language-model.js';

type Body = Record<string, unknown>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What an emulated server needs to answer OpenAI chat/completions requests. */
export interface OpenAiEmulationContext {
  req: Request;
  res: Response;
  route: 'chat' | 'completions';
  model: LanguageModel;
  alias: string;
  contextTokens: number;
  latency: EmulatedLatency;
  sampling: (body: Body) => EmulatedSampling;
}

function promptOf(c: OpenAiEmulationContext, b: Body): number[] | undefined {
  const tok = c.model.tokenizer;
  if (c.route === 'chat') {
    return Array.isArray(b.messages)
      ? tok.encode(chatMlPrompt(b.messages as { role: string; content: unknown }[]), {
          addBos: true,
          parseSpecial: true,
        })
      : undefined;
  }
  const p =
    Array.isArray(b.prompt) && b.prompt.length === 1 && !Array.isArray(b.prompt[0]) && typeof b.prompt[0] === 'string'
      ? b.prompt[0]
      : b.prompt;
  if (typeof p === 'string') return tok.encode(p, { addBos: true, parseSpecial: true });
  if (Array.isArray(p) && p.every((t) => typeof t === 'number' && tok.has(t))) return p as number[];
  return undefined;
}

/** Serves OpenAI `/v1/completions` and `/v1/chat/completions` from an n-gram model (stop strings honoured). */
export async function handleOpenAi(c: OpenAiEmulationContext): Promise<void> {
  const b = c.req.body as Body;
  const prompt = promptOf(c, b);
  if (prompt === undefined) {
    c.res.status(400).json({ error: { code: 400, message: 'invalid prompt', type: 'invalid_request_error' } });
    return;
  }
  const maxTokens =
    typeof b.max_tokens === 'number'
      ? b.max_tokens
      : typeof b.max_completion_tokens === 'number'
        ? b.max_completion_tokens
        : c.contextTokens;
  const stops = typeof b.stop === 'string' ? [b.stop] : Array.isArray(b.stop) ? (b.stop as string[]) : [];
  const id = `${c.route === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const object = c.route === 'chat' ? 'chat.completion' : 'text_completion';
  const tok = c.model.tokenizer;
  await sleep(c.latency.perRequestMs);
  const ids: number[] = [];
  let text = '';
  let finish: 'stop' | 'length' = 'length';
  const stream = b.stream === true;
  if (stream) c.res.setHeader('content-type', 'text/event-stream');
  const send = (payload: unknown) => c.res.write(`data: ${JSON.stringify(payload)}\n\n`);
  const chunk = (choice: Record<string, unknown>) => ({
    id,
    object: `${object}.chunk`.replace('text_completion.chunk', 'text_completion'),
    created,
    model: c.alias,
    choices: [{ index: 0, ...choice }],
  });
  if (stream && c.route === 'chat') send(chunk({ delta: { role: 'assistant', content: null }, finish_reason: null }));
  const it = emulateGeneration(c.model, prompt, { maxTokens, contextTokens: c.contextTokens, sampling: c.sampling(b) });
  let step = it.next();
  for (; !step.done; step = it.next()) {
    if (c.res.destroyed) return;
    const t: EmulatedToken = step.value;
    if (stream) await sleep(c.latency.perTokenMs);
    ids.push(t.id);
    if (step.value.id === 2) {
      finish = 'stop';
      break;
    }
    const full = tok.decode(ids);
    const hit = stops
      .map((s) => full.indexOf(s))
      .filter((i) => i >= 0)
      .sort((x, y) => x - y)[0];
    const next = hit === undefined ? full : full.slice(0, hit);
    const piece = next.slice(text.length);
    text = next;
    if (stream && piece !== '')
      send(
        chunk(
          c.route === 'chat'
            ? { delta: { content: piece }, finish_reason: null }
            : { text: piece, finish_reason: null },
        ),
      );
    if (hit !== undefined) {
      finish = 'stop';
      break;
    }
  }
  if (!stream) await sleep(c.latency.perTokenMs * ids.length);
  const usage = {
    prompt_tokens: prompt.length,
    completion_tokens: ids.length,
    total_tokens: prompt.length + ids.length,
  };
  if (!stream) {
    const choice =
      c.route === 'chat'
        ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }
        : { index: 0, text, logprobs: null, finish_reason: finish };
    c.res.json({ id, object, created, model: c.alias, choices: [choice], usage });
    return;
  }
  send(chunk(c.route === 'chat' ? { delta: {}, finish_reason: finish } : { text: '', finish_reason: finish }));
  const opts = b.stream_options as { include_usage?: unknown } | undefined;
  if (opts?.include_usage === true)
    send({ id, object: `${object}.chunk`, created, model: c.alias, choices: [], usage });
  c.res.end('data: [DONE]\n\n');
}
