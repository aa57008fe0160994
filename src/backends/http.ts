import { trace } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import { Pool, errors as undiciErrors } from 'undici';
import type { TimeoutConfig } from '../config/types.js';
import { ClientAbortError, UpstreamError, type UpstreamRole } from '../errors.js';
import { inClientSpan, withTraceHeaders } from '../tracing.js';
import type { RetryBudget } from './retry-budget.js';
import { parseSse } from './sse.js';

/** One finished upstream request, for metrics. */
export interface UpstreamObservation {
  role: UpstreamRole;
  baseUrl: string;
  path: string;
  ms: number;
  outcome: 'ok' | 'http-error' | 'timeout' | 'unavailable' | 'aborted';
}

/** Retry policy: only failures before any response byte, bounded by attempts and a budget. */
export interface RetryOptions {
  maxAttempts: number;
  budget: RetryBudget;
  /** Longest `Retry-After` honoured; longer ones are not retried. */
  maxRetryAfterMs: number;
  onRetry?: () => void;
}

/** Where and how to reach one upstream server. */
export interface HttpUpstreamOptions {
  baseUrl: string;
  role: UpstreamRole;
  apiKey?: string | undefined;
  timeouts: TimeoutConfig;
  /** Keep-alive connections kept open to this upstream. */
  connections?: number;
  /** A dispatcher to use instead of a new pool (tests inject undici's MockAgent). */
  dispatcher?: Dispatcher;
  /** PEM CA certificates trusted for https upstreams (in addition to the system's). */
  ca?: string | undefined;
  /** A client certificate and key (PEM) presented to https upstreams that ask (mutual TLS). */
  clientCert?: { cert: string; key: string } | undefined;
  observe?: ((o: UpstreamObservation) => void) | undefined;
  retry?: RetryOptions | undefined;
}

const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const RETRYABLE_STATUS = new Set([429, 502, 503]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A JSON object (not null, not an array): the first check of any wire parsing. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Byte counts on one link, for the network-economy figures. */
export interface LinkCounters {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * One long-lived keep-alive pool to one upstream, with connect/headers/body timeouts on every call
 * and errors mapped to UpstreamError. Aborting the signal cancels the request.
 */
export class HttpUpstream {
  readonly baseUrl: string;
  readonly role: UpstreamRole;
  readonly counters: LinkCounters = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  private readonly pool: Dispatcher;
  private readonly origin: string;
  private readonly headers: Record<string, string>;
  private readonly basePath: string;
  private readonly observe: HttpUpstreamOptions['observe'];
  private readonly retry: RetryOptions | undefined;

  constructor(options: HttpUpstreamOptions) {
    const url = new URL(options.baseUrl);
    this.baseUrl = options.baseUrl;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.role = options.role;
    this.origin = url.origin;
    this.pool =
      options.dispatcher ??
      new Pool(url.origin, {
        connections: options.connections ?? 64,
        connect: {
          timeout: options.timeouts.connectTimeoutMs,
          ...(options.ca === undefined ? {} : { ca: options.ca }),
          ...options.clientCert,
        },
        headersTimeout: options.timeouts.headersTimeoutMs,
        bodyTimeout: options.timeouts.bodyTimeoutMs,
        keepAliveTimeout: 30_000,
      });
    this.observe = options.observe;
    this.retry = options.retry;
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (options.apiKey !== undefined) this.headers.authorization = `Bearer ${options.apiKey}`;
  }

  /** Sends a request and parses a JSON response; non-2xx statuses throw UpstreamError. */
  async json(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const res = await this.send(method, path, body, signal);
    const text = await this.readText(res.body, signal);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new UpstreamError('upstream_bad_response', `${this.role} returned malformed JSON from ${path}`, {
        role: this.role,
        cause: err,
      });
    }
  }

  /** Whether GET `path` answers with JSON and a 2xx status (false on any failure): a health probe. */
  async answers(path: string, signal: AbortSignal): Promise<boolean> {
    try {
      await this.json('GET', path, undefined, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a request and yields the `data` of each server-sent event of the response. */
  async *events(path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<string> {
    const res = await this.send('POST', path, body, signal);
    try {
      for await (const data of parseSse(this.countBody(res.body))) yield data;
    } catch (err) {
      throw this.mapError(err, signal);
    } finally {
      // Ends the upstream request early when the consumer stops (client gone, stop string hit).
      res.body.destroy();
    }
  }

  /** Closes every connection of the pool. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  /**
   * Sends a request; retries (when configured) only failures that happen before any response byte
   * (connection refused/reset, 429/502/503), honouring Retry-After, within the retry budget.
   */
  private send(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal) {
    const describe = () => ({
      name: `${method} ${path}`,
      attributes: { 'http.request.method': method, 'url.full': `${this.baseUrl}${path}`, 'dsd.role': this.role },
    });
    return inClientSpan(describe, () => this.sendWithRetries(method, path, body, signal));
  }

  private async sendWithRetries(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal) {
    this.retry?.budget.deposit();
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        const res = await this.sendOnce(method, path, body, signal);
        this.observe?.({
          role: this.role,
          baseUrl: this.baseUrl,
          path,
          ms: performance.now() - started,
          outcome: 'ok',
        });
        return res;
      } catch (err) {
        const e = err as Error;
        this.observe?.({
          role: this.role,
          baseUrl: this.baseUrl,
          path,
          ms: performance.now() - started,
          outcome: outcomeOf(e),
        });
        const wait = this.retryDelay(e, attempt, signal);
        if (wait === undefined) throw err;
        this.retry?.onRetry?.();
        await sleep(wait);
      }
    }
  }

  /** Delay before the next attempt, or undefined when this failure must not be retried. */
  private retryDelay(err: Error, attempt: number, signal?: AbortSignal): number | undefined {
    const r = this.retry;
    if (r === undefined || attempt >= r.maxAttempts || signal?.aborted || !(err instanceof UpstreamError))
      return undefined;
    const causeCode = (err.cause as { code?: string } | undefined)?.code ?? '';
    const retryable =
      err.code === 'upstream_unavailable'
        ? RETRYABLE_CODES.has(causeCode)
        : RETRYABLE_STATUS.has(err.upstreamStatus ?? 0);
    if (!retryable) return undefined;
    const after = err.retryAfterMs;
    if (after !== undefined && after > r.maxRetryAfterMs) return undefined;
    if (!r.budget.withdraw()) return undefined;
    return after ?? 50 * 2 ** (attempt - 1) * (0.5 + Math.random());
  }

  private async sendOnce(method: 'GET' | 'POST', path: string, body: unknown, signal?: AbortSignal) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    this.counters.requests += 1;
    const bytes = payload === undefined ? 0 : Buffer.byteLength(payload);
    this.counters.bytesSent += bytes;
    const span = trace.getActiveSpan();
    span?.setAttribute('dsd.bytes_sent', bytes);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        origin: this.origin,
        method,
        path: `${this.basePath}${path}`,
        headers: withTraceHeaders(this.headers),
        ...(payload === undefined ? {} : { body: payload }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      throw this.mapError(err, signal);
    }
    span?.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const text = await this.readText(res.body, signal, MAX_ERROR_BODY_BYTES).catch(() => '');
    const error = this.statusError(res.statusCode, text, path);
    const retryAfter = Number(res.headers['retry-after']);
    if (Number.isFinite(retryAfter) && retryAfter >= 0) error.retryAfterMs = retryAfter * 1000;
    throw error;
  }

  private async readText(body: Dispatcher.ResponseData['body'], signal?: AbortSignal, limit = Infinity) {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of this.countBody(body)) {
        size += chunk.length;
        if (size > limit) break;
        chunks.push(chunk);
      }
    } catch (err) {
      throw this.mapError(err, signal);
    } finally {
      body.destroy();
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private async *countBody(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of body) {
      this.counters.bytesReceived += chunk.length;
      yield chunk;
    }
  }

  private statusError(status: number, text: string, path: string): UpstreamError {
    const detail = upstreamMessage(text);
    const message = `${this.role} server answered ${status} on ${path}${detail ? `: ${detail}` : ''}`;
    // A 4xx about the request itself (bad prompt, context too long) is the client's to fix; auth
    // and routing failures between dsd and its upstream are not.
    const relay = status >= 400 && status < 500 && ![401, 403, 404, 405, 407].includes(status);
    return new UpstreamError('upstream_error', message, {
      role: this.role,
      upstreamStatus: status,
      ...(relay ? { status } : {}),
    });
  }

  /** Maps a transport failure to UpstreamError (or ClientAbortError when we aborted it). */
  mapError(err: unknown, signal?: AbortSignal): Error {
    if (err instanceof UpstreamError || err instanceof ClientAbortError) return err;
    if (signal?.aborted) return signal.reason instanceof Error ? signal.reason : new ClientAbortError();
    const code = (err as { code?: string } | null)?.code ?? '';
    const where = `${this.role} server at ${this.baseUrl}`;
    if (
      err instanceof undiciErrors.ConnectTimeoutError ||
      err instanceof undiciErrors.HeadersTimeoutError ||
      err instanceof undiciErrors.BodyTimeoutError ||
      code === 'UND_ERR_CONNECT_TIMEOUT' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT'
    ) {
      return new UpstreamError('upstream_timeout', `${where} timed out (${code || 'timeout'})`, {
        role: this.role,
        cause: err,
      });
    }
    return new UpstreamError('upstream_unavailable', `${where} is unreachable (${code || (err as Error).message})`, {
      role: this.role,
      cause: err,
    });
  }
}

function outcomeOf(err: Error): UpstreamObservation['outcome'] {
  if (err instanceof ClientAbortError) return 'aborted';
  if (!(err instanceof UpstreamError)) return 'aborted';
  switch (err.code) {
    case 'upstream_timeout':
      return 'timeout';
    case 'upstream_unavailable':
      return 'unavailable';
    default:
      return 'http-error';
  }
}

/** Extracts a short, safe message from an upstream error body (OpenAI or llama.cpp shape). */
export function upstreamMessage(text: string): string {
  let message = text;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const e = parsed.error;
    const candidate = typeof e === 'string' ? e : (e?.message ?? parsed.message ?? parsed.detail);
    if (typeof candidate === 'string') message = candidate;
  } catch {
    // not JSON: keep the text
  }
  message = message.replace(/\s+/g, ' ').trim();
  return message.length > 300 ? `${message.slice(0, 300)}…` : message;
}
