import type { Response } from 'express';
import { LlamaCppServer } from '../../backends/llamacpp/client.js';
import type { ModelServer } from '../../backends/types.js';
import type { DsdConfig } from '../../config/types.js';
import type { DsdMetrics } from '../metrics.js';
import type { GenerationRequest } from '../request-types.js';
import { SseWriter } from './sse-writer.js';

/** Upstream-only fields that are not part of the OpenAI response shape. */
const NON_OPENAI_FIELDS = ['timings', 'slot_id', 'id_slot', '__verbose'];

/** Rewrites an upstream OpenAI object to what dsd's clients see (their model name, no extras). */
export function normalizeOpenAiObject(obj: unknown, model: string): unknown {
  if (typeof obj !== 'object' || obj === null) return obj;
  const out: Record<string, unknown> = { ...(obj as Record<string, unknown>) };
  for (const field of NON_OPENAI_FIELDS) delete out[field];
  if ('model' in out) out.model = model;
  return out;
}

function isUsageOnlyChunk(chunk: unknown): boolean {
  const c = chunk as { choices?: unknown[]; usage?: unknown } | null;
  return Array.isArray(c?.choices) && c.choices.length === 0 && c.usage !== undefined;
}

/** A request sent to the target unchanged. */
export interface PassthroughJob {
  request: GenerationRequest;
  target: ModelServer;
  res: Response;
  signal: AbortSignal;
  metrics?: DsdMetrics;
  /** Why it is not accelerated, for the request's log line. */
  reason?: string;
  /** Strict tenant isolation: a llama.cpp target must not reuse its prompt cache (`cache_prompt: false`). */
  noPromptCache?: boolean;
}

/**
 * What keeps tenants out of each other's caches on an upstream: vLLM's `cache_salt` (tenant scope),
 * plus, in strict scope, no prompt-cache reuse where the server has no salt (llama.cpp).
 */
export function upstreamIsolation(
  setting: DsdConfig['cacheScope'],
  scope: string,
): { cacheSalt?: string; noPromptCache?: boolean } {
  if (scope === '') return {};
  return setting === 'strict' ? { cacheSalt: scope, noPromptCache: true } : { cacheSalt: scope };
}

function completionTokensOf(obj: unknown): number {
  const n = (obj as { usage?: { completion_tokens?: unknown } } | null)?.usage?.completion_tokens;
  return typeof n === 'number' ? n : 0;
}

function textOf(obj: unknown): string {
  const choice = (
    obj as { choices?: { delta?: { content?: unknown }; text?: unknown; message?: { content?: unknown } }[] } | null
  )?.choices?.[0];
  const text = choice?.delta?.content ?? choice?.text ?? choice?.message?.content;
  return typeof text === 'string' ? text : '';
}

/**
 * llama-server has no cache salt: a tenant's request passed through may reuse its cache only where
 * the server's tenant index says so (LlamaCppServer.passthroughIsolation), and what it computes is
 * recorded for the next decision. Other servers need nothing here (vLLM gets `cache_salt`).
 */
async function llamaIsolation(
  job: PassthroughJob,
): Promise<{ noPromptCache: boolean; done: (outputText: string) => void } | undefined> {
  const { request, target, signal } = job;
  if (!(target instanceof LlamaCppServer) || request.cacheScope === '' || job.noPromptCache === true) return undefined;
  return target.passthroughIsolation(request.cacheScope, request.input, signal);
}

/** Sends a request the engine does not accelerate straight to the target, in OpenAI shape. */
export async function passthrough(job: PassthroughJob): Promise<void> {
  const { request, target, res, signal } = job;
  const startMs = performance.now();
  let firstTokenMs: number | undefined;
  let tokens = 0;
  const finish = () => {
    job.metrics?.observeGeneration(request.route, 'passthrough', {
      startMs,
      firstTokenMs,
      endMs: performance.now(),
      tokens,
    });
    res.locals.summary = {
      ...(res.locals.summary as object | undefined),
      mode: 'passthrough',
      reason: job.reason,
      completionTokens: tokens,
    };
  };
  const body = { ...request.upstreamBody };
  // The client's own cache_salt was dropped at validation: the tenant's is the only one sent.
  if (target.kind === 'vllm' && request.cacheScope !== '') body.cache_salt = request.cacheScope;
  if (target.kind === 'llamacpp' && job.noPromptCache === true) body.cache_prompt = false;
  const isolation = await llamaIsolation(job);
  if (isolation?.noPromptCache === true) body.cache_prompt = false;
  let text = '';
  if (!request.stream) {
    const json = await target.openAiJson(request.route, body, signal);
    firstTokenMs = performance.now();
    tokens = completionTokensOf(json);
    isolation?.done(textOf(json));
    finish();
    res.json(normalizeOpenAiObject(json, request.model));
    return;
  }
  // Ask for usage always: it is dropped below unless the client asked for it.
  body.stream_options = { ...(body.stream_options as object | undefined), include_usage: true };
  const writer = new SseWriter(res);
  try {
    for await (const chunk of target.openAiStream(request.route, body, signal)) {
      if (writer.closed) return;
      const piece = textOf(chunk);
      text += piece;
      if (firstTokenMs === undefined && piece !== '') firstTokenMs = performance.now();
      tokens = completionTokensOf(chunk) || tokens;
      if (isUsageOnlyChunk(chunk) && !request.includeUsage) continue;
      await writer.send(normalizeOpenAiObject(chunk, request.model));
    }
  } catch (err) {
    // Before the first byte the error handler answers with a proper status; after, in-band.
    if (!writer.hasStarted) throw err;
    await writer.fail(err);
    return;
  } finally {
    isolation?.done(text);
    finish();
  }
  await writer.done();
}
