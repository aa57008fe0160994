import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One prompt of a workload (a JSONL line: `{"prompt": "..."}` or `{"messages": [...]}`). */
export interface BenchPrompt {
  messages: { role: string; content: string }[];
}

/** The prompt set shipped with dsd: 300 short prompts of our own (stories and small tasks). */
export const DEFAULT_PROMPTS_PATH = fileURLToPath(new URL('../../data/prompts.jsonl', import.meta.url));

/** Reads a JSONL prompt file; throws naming the first bad line. */
export function loadPrompts(path: string = DEFAULT_PROMPTS_PATH): BenchPrompt[] {
  const prompts: BenchPrompt[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let parsed: { prompt?: unknown; messages?: unknown };
      try {
        parsed = JSON.parse(line) as typeof parsed;
      } catch {
        throw new Error(`${path}:${i + 1}: not JSON`);
      }
      if (typeof parsed.prompt === 'string') prompts.push({ messages: [{ role: 'user', content: parsed.prompt }] });
      else if (Array.isArray(parsed.messages)) prompts.push({ messages: parsed.messages as BenchPrompt['messages'] });
      else throw new Error(`${path}:${i + 1}: expected "prompt" (a string) or "messages" (an array)`);
    });
  if (prompts.length === 0) throw new Error(`${path}: no prompts`);
  return prompts;
}

/** What happened to one request. */
export interface RequestResult {
  ok: boolean;
  /** HTTP status; 0 when no response arrived. */
  status: number;
  error?: string;
  /** Start, relative to the start of the run. */
  startMs: number;
  /** Time to the first content (streaming); the whole request otherwise. */
  ttftMs: number | undefined;
  e2eMs: number;
  outputTokens: number;
  /** Time per output token after the first (streaming, ≥ 2 tokens). */
  tpotMs: number | undefined;
  /** dsd's usage extension, when the endpoint is dsd. */
  dsd?: { rounds: number; draft_tokens: number; accepted_tokens: number };
}

/** A workload against one endpoint. */
export interface LoadOptions {
  /** Base URL, with or without `/v1`. */
  url: string;
  apiKey?: string | undefined;
  model: string;
  concurrency: number;
  requests: number;
  prompts: readonly BenchPrompt[];
  /** Index of the first prompt (so interleaved waves use different prompts). */
  promptOffset?: number;
  maxTokens: number;
  temperature: number;
  stream: boolean;
  timeoutMs: number;
  /** Extra request headers (e.g. `x-dsd-speculative: off`). */
  headers?: Record<string, string>;
  onDone?: (result: RequestResult) => void;
}

/** `http://host:port` or `…/v1` → `…/v1`. */
export function apiBase(url: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`;
}

/** The first model an endpoint lists. */
export async function firstModel(url: string, apiKey: string | undefined, timeoutMs: number): Promise<string> {
  const res = await fetch(`${apiBase(url)}/models`, {
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`${url}: GET /v1/models answered ${res.status}`);
  const body = (await res.json()) as { data?: { id?: string }[] };
  const id = body.data?.[0]?.id;
  if (id === undefined) throw new Error(`${url}: /v1/models lists no model`);
  return id;
}

/** Runs `requests` chat completions with `concurrency` in flight; never throws for a failed request. */
export async function runLoad(o: LoadOptions): Promise<RequestResult[]> {
  const results: RequestResult[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < o.requests; i = next++) {
      const prompt = o.prompts[((o.promptOffset ?? 0) + i) % o.prompts.length] as BenchPrompt;
      const result = await oneRequest(o, prompt, performance.now() - started);
      results.push(result);
      o.onDone?.(result);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, o.requests)) }, worker));
  return results;
}

async function oneRequest(o: LoadOptions, prompt: BenchPrompt, startMs: number): Promise<RequestResult> {
  const t0 = performance.now();
  const base = { startMs, ttftMs: undefined, tpotMs: undefined, outputTokens: 0 };
  try {
    const res = await fetch(`${apiBase(o.url)}/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}),
        ...o.headers,
      },
      body: JSON.stringify({
        model: o.model,
        messages: prompt.messages,
        max_tokens: o.maxTokens,
        temperature: o.temperature,
        stream: o.stream,
        ...(o.stream ? { stream_options: { include_usage: true } } : {}),
      }),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let message = text.slice(0, 200);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // not JSON
      }
      return { ...base, ok: false, status: res.status, error: message, e2eMs: performance.now() - t0 };
    }
    return o.stream ? await readStream(res, t0, base) : await readWhole(res, t0, base);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return {
      ...base,
      ok: false,
      status: 0,
      error: e.name === 'TimeoutError' ? `timed out after ${o.timeoutMs} ms` : (e.cause?.code ?? e.message),
      e2eMs: performance.now() - t0,
    };
  }
}

type Usage = { completion_tokens?: number; dsd?: RequestResult['dsd'] };

async function readWhole(res: Response, t0: number, base: Pick<RequestResult, 'startMs'>): Promise<RequestResult> {
  const body = (await res.json()) as { usage?: Usage };
  const e2eMs = performance.now() - t0;
  const result: RequestResult = {
    ...base,
    ok: true,
    status: res.status,
    ttftMs: e2eMs,
    e2eMs,
    outputTokens: body.usage?.completion_tokens ?? 0,
    tpotMs: undefined,
  };
  if (body.usage?.dsd) result.dsd = body.usage.dsd;
  return result;
}

/** Reads an SSE stream: TTFT at the first content, tokens from the usage chunk (else content chunks). */
async function readStream(res: Response, t0: number, base: Pick<RequestResult, 'startMs'>): Promise<RequestResult> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ttftMs: number | undefined;
  let chunks = 0;
  let usage: Usage | undefined;
  let error: string | undefined;
  let done = false;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    buffer += decoder.decode(r.value, { stream: true });
    const events = buffer.split('\n\n');
    buffer = events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('');
      if (data === '') continue;
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const chunk = JSON.parse(data) as {
        error?: { message?: string };
        usage?: Usage;
        choices?: { delta?: { content?: string }; text?: string }[];
      };
      if (chunk.error) error = chunk.error.message ?? 'error';
      if (chunk.usage) usage = chunk.usage;
      const content = chunk.choices?.[0]?.delta?.content ?? chunk.choices?.[0]?.text;
      if (typeof content === 'string' && content !== '') {
        ttftMs ??= performance.now() - t0;
        chunks += 1;
      }
    }
  }
  const e2eMs = performance.now() - t0;
  const outputTokens = usage?.completion_tokens ?? chunks;
  const ok = error === undefined && done;
  const result: RequestResult = {
    ...base,
    ok,
    status: res.status,
    ttftMs,
    e2eMs,
    outputTokens,
    tpotMs: ttftMs !== undefined && outputTokens > 1 ? (e2eMs - ttftMs) / (outputTokens - 1) : undefined,
  };
  if (!ok) result.error = error ?? 'stream ended without [DONE]';
  if (usage?.dsd) result.dsd = usage.dsd;
  return result;
}
