import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import type { EmulatedSampling } from './generation.js';
import type { LanguageModel } from './language-model.js';

/** Scripted costs of an emulated server (real timer delays; tests and benchmarks change them live). */
export interface EmulatedLatency {
  /** Before any response. */
  perRequestMs: number;
  /** Per generated token (a batch of prompts costs one step per token position). */
  perTokenMs: number;
  /** Per prompt of a batch (what scoring more positions costs on top of the step). */
  perPositionMs: number;
}

/** What an emulator observed, for tests (aborted requests prove client-disconnect propagation). */
export interface EmulatorStats {
  requests: number;
  completed: number;
  aborted: number;
  lastCompletionBody: Record<string, unknown> | undefined;
  /** The W3C traceparent of the last request that carried one. */
  lastTraceparent: string | undefined;
}

/** A fault an emulated server injects into its generation endpoints, for fault-tolerance tests. */
export type EmulatedFault =
  | 'none'
  | 'malformed-json'
  | 'out-of-vocabulary'
  | 'http-500'
  | 'http-503'
  | 'stall'
  | 'malformed-sse';

/** Options common to emulated servers. */
export interface EmulatorOptions {
  model: LanguageModel;
  alias: string;
  contextTokens?: number;
  latency?: Partial<EmulatedLatency>;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
}

/** Waits `ms` (no timer for 0, so unloaded emulators add no latency). */
export const sleep = (ms: number): Promise<void> =>
  ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();

/** A finite number or the fallback. */
export function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/** An in-process HTTP server on loopback backed by an n-gram model; subclasses add the API routes. */
export abstract class EmulatedServer {
  readonly latency: EmulatedLatency;
  readonly stats: EmulatorStats = {
    requests: 0,
    completed: 0,
    aborted: 0,
    lastCompletionBody: undefined,
    lastTraceparent: undefined,
  };
  /** Fault injected into `/completion` and `/v1/completions` (changeable while running). */
  fault: EmulatedFault = 'none';
  /** Requests left to fault; at 0 the fault clears itself. */
  faultCount = Infinity;
  protected readonly contextTokens: number;
  private server: Server | undefined;

  constructor(protected readonly options: EmulatorOptions) {
    this.latency = { perRequestMs: 0, perTokenMs: 0, perPositionMs: 0, ...options.latency };
    this.contextTokens = options.contextTokens ?? 2048;
  }

  /** The base URL once listening. */
  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error('emulator is not listening');
    return `${this.options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${address.port}`;
  }

  /** Starts listening on a free loopback port (or the given one). */
  async listen(port = 0): Promise<string> {
    const app = express();
    app.use(express.json({ limit: '50mb' }));
    app.use((req, res, next) => {
      this.stats.requests += 1;
      const traceparent = req.headers.traceparent;
      if (typeof traceparent === 'string') this.stats.lastTraceparent = traceparent;
      res.on('close', () => {
        if (res.writableFinished) this.stats.completed += 1;
        else this.stats.aborted += 1;
      });
      next();
    });
    app.post(['/completion', '/v1/completions', '/v1/chat/completions'], (req, res, next) =>
      this.injectFault(req, res, next),
    );
    this.routes(app);
    app.use((err: unknown, _req: Request, res: Response, _next: unknown) => {
      res.status(500).json({ error: { code: 500, message: String((err as Error).message), type: 'server_error' } });
    });
    this.server = this.options.tls === undefined ? createHttpServer(app) : createHttpsServer(this.options.tls, app);
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    return this.url;
  }

  /** Stops listening and drops open connections. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private injectFault(req: Request, res: Response, next: () => void): void {
    const fault = this.fault;
    if (fault !== 'none' && --this.faultCount <= 0) {
      this.fault = 'none';
      this.faultCount = Infinity;
    }
    switch (fault) {
      case 'none':
        next();
        return;
      case 'malformed-json':
        res.type('application/json').send('{"tokens": [1, 2');
        return;
      case 'out-of-vocabulary':
        res.json({
          tokens: [9_999_999, 9_999_998],
          completion_probabilities: [
            { id: 9_999_999, token: '?', bytes: [63], logprob: -0.1, top_logprobs: [] },
            { id: 9_999_998, token: '?', bytes: [63], logprob: -0.1, top_logprobs: [] },
          ],
          stop_type: 'limit',
        });
        return;
      case 'http-500':
        res.status(500).json({ error: { code: 500, message: 'injected failure', type: 'server_error' } });
        return;
      case 'http-503':
        res.status(503).setHeader('retry-after', '0');
        res.json({ error: { code: 503, message: 'injected overload', type: 'unavailable_error' } });
        return;
      case 'malformed-sse':
        if ((req.body as { stream?: unknown } | undefined)?.stream !== true) {
          next();
          return;
        }
        res.setHeader('content-type', 'text/event-stream');
        res.write(
          `data: ${JSON.stringify({
            index: 0,
            content: ' x',
            tokens: [300],
            stop: false,
            choices: [{ index: 0, text: ' x', finish_reason: null }],
          })}\n\n`,
        );
        res.end('data: {"tokens": [1, \n\n');
        return;
      case 'stall':
        // Never answers; the connection is dropped when the client gives up or the server closes.
        return;
    }
  }

  protected get tok() {
    return this.options.model.tokenizer;
  }

  /** Sampling settings from a request body, with this server's defaults. */
  protected abstract sampling(body: Record<string, unknown>): EmulatedSampling;

  /** Registers the API routes. */
  protected abstract routes(app: Express): void;
}
