import { UpstreamError } from '../errors.js';
import type { HttpUpstream } from './http.js';
import type { OpenAiRoute } from './types.js';

const PATHS: Record<OpenAiRoute, string> = { chat: '/v1/chat/completions', completions: '/v1/completions' };

/** Sends an OpenAI request to a server's own OpenAI API and returns its JSON. */
export function openAiJson(http: HttpUpstream, route: OpenAiRoute, body: Record<string, unknown>, signal: AbortSignal) {
  return http.json('POST', PATHS[route], { ...body, stream: false }, signal);
}

/** Streams an OpenAI request from a server's own OpenAI API, yielding parsed chunks until [DONE]. */
export async function* openAiStream(
  http: HttpUpstream,
  route: OpenAiRoute,
  body: Record<string, unknown>,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  for await (const data of http.events(PATHS[route], { ...body, stream: true }, signal)) {
    if (data.trim() === '[DONE]') return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch (err) {
      throw new UpstreamError('upstream_bad_response', `${http.role} sent a malformed stream event`, {
        role: http.role,
        cause: err,
      });
    }
    const error = (chunk as { error?: unknown } | null)?.error;
    if (error !== undefined && error !== null) {
      const message =
        typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string'
          ? (error as { message: string }).message
          : 'error';
      throw new UpstreamError('upstream_error', `${http.role} server failed mid-stream: ${message.slice(0, 300)}`, {
        role: http.role,
      });
    }
    yield chunk;
  }
}
