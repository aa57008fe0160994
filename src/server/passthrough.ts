import type { Response } from 'express';
import type { ModelServer } from '../backends/types.js';
import type { GenerationRequest } from './request-types.js';
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

/** Sends a request the engine does not accelerate straight to the target, in OpenAI shape. */
export async function passthrough(
  request: GenerationRequest,
  target: ModelServer,
  res: Response,
  signal: AbortSignal,
): Promise<void> {
  const body = { ...request.upstreamBody };
  if (!request.stream) {
    const json = await target.openAiJson(request.route, body, signal);
    res.json(normalizeOpenAiObject(json, request.model));
    return;
  }
  // Ask for usage always: it is dropped below unless the client asked for it.
  body.stream_options = { ...(body.stream_options as object | undefined), include_usage: true };
  const writer = new SseWriter(res);
  try {
    for await (const chunk of target.openAiStream(request.route, body, signal)) {
      if (writer.closed) return;
      if (isUsageOnlyChunk(chunk) && !request.includeUsage) continue;
      await writer.send(normalizeOpenAiObject(chunk, request.model));
    }
  } catch (err) {
    // Before the first byte the error handler answers with a proper status; after, in-band.
    if (!writer.hasStarted) throw err;
    await writer.fail(err);
    return;
  }
  await writer.done();
}
