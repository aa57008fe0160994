import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import type { LanguageModel } from './language-model.js';
import type { EmulatedSampling } from './generation.js';

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
}

/** Options common to emulated servers. */
export interface EmulatorOptions {
  model: LanguageModel;
  alias: string;
  contextTokens?: number;
  latency?: Partial<EmulatedLatency>;
}

/** Waits `ms` (no timer for 0, so unloaded emulators add no latency). */
export const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

/** A finite number or the fallback. */
export function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/** An in-process HTTP server on loopback backed by an n-gram model; subclasses add the API routes. */
export abstract class EmulatedServer {
  readonly latency: EmulatedLatency;
  readonly stats: EmulatorStats = { requests: 0, completed: 0, aborted: 0, lastCompletionBody: undefined };
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
    return `http://127.0.0.1:${address.port}`;
  }

  /** Starts listening on a free loopback port (or the given one). */
  async listen(port = 0): Promise<string> {
    const app = express();
    app.use(express.json({ limit: '50mb' }));
    app.use((_req, res, next) => {
      this.stats.requests += 1;
      res.on('close', () => (res.writableFinished ? (this.stats.completed += 1) : (this.stats.aborted += 1)));
      next();
    });
    this.routes(app);
    app.use((err: unknown, _req: Request, res: Response, _next: unknown) => {
      res.status(500).json({ error: { code: 500, message: String((err as Error).message), type: 'server_error' } });
    });
    this.server = app.listen(port, '127.0.0.1');
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

  protected get tok() {
    return this.options.model.tokenizer;
  }

  /** Sampling settings from a request body, with this server's defaults. */
  protected abstract sampling(body: Record<string, unknown>): EmulatedSampling;

  /** Registers the API routes. */
  protected abstract routes(app: Express): void;
}
