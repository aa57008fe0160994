import { connectServer } from '../backends/detect.js';
import type { ModelServer, ServerInfo } from '../backends/types.js';
import type { DsdConfig, UpstreamConfig } from '../config/types.js';
import { DsdError, type UpstreamRole } from '../errors.js';
import type { Logger } from '../logger.js';

/** A connected upstream server and what it said about itself. */
export interface ConnectedServer {
  server: ModelServer;
  info: ServerInfo;
}

/** Connects one role lazily: the first caller connects, failures are retried by the next caller. */
class LazyServer {
  private pending: Promise<ConnectedServer> | undefined;
  private connected: ConnectedServer | undefined;

  constructor(
    private readonly url: string,
    private readonly role: UpstreamRole,
    private readonly config: UpstreamConfig,
    private readonly logger: Logger,
  ) {}

  get current(): ConnectedServer | undefined {
    return this.connected;
  }

  get(signal: AbortSignal): Promise<ConnectedServer> {
    if (this.connected !== undefined) return Promise.resolve(this.connected);
    // Detection must not die with the first client that asked: it gets its own deadline.
    this.pending ??= this.connect().finally(() => {
      this.pending = undefined;
    });
    return raceAbort(this.pending, signal);
  }

  private async connect(): Promise<ConnectedServer> {
    const t = this.config.timeouts;
    const signal = AbortSignal.timeout(t.connectTimeoutMs + t.headersTimeoutMs);
    const server = await connectServer({ url: this.url, role: this.role, kind: this.config.kind, model: this.config.model, apiKey: this.config.apiKey, timeouts: t }, signal);
    try {
      const info = await server.describe(signal);
      this.connected = { server, info };
      this.logger.info('upstream connected', { role: this.role, url: this.url, kind: info.kind, model: info.modelId, contextTokens: info.contextTokens, slots: info.parallelSlots });
      return this.connected;
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.connected?.server.close();
    this.connected = undefined;
  }
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The target and the draft pool of one dsd instance. */
export class Upstreams {
  private readonly targetServer: LazyServer;
  private readonly draftServers: LazyServer[];

  constructor(config: DsdConfig, logger: Logger) {
    const targetUrl = config.target.urls[0];
    if (targetUrl === undefined) throw new DsdError('internal_error', 'no target URL configured (DSD_TARGET_URL)');
    this.targetServer = new LazyServer(targetUrl, 'target', config.target, logger);
    this.draftServers = config.draft.urls.map((url) => new LazyServer(url, 'draft', config.draft, logger));
  }

  /** The target, connected (kind detected, model described) on first use. */
  target(signal: AbortSignal): Promise<ConnectedServer> {
    return this.targetServer.get(signal);
  }

  /** True when at least one draft is configured. */
  get hasDrafts(): boolean {
    return this.draftServers.length > 0;
  }

  /** The first draft that connects, or undefined when none does (speculation then degrades). */
  async draft(signal: AbortSignal): Promise<ConnectedServer | undefined> {
    for (const draft of this.draftServers) {
      try {
        return await draft.get(signal);
      } catch {
        // try the next one; the caller falls back to target-only decoding
      }
    }
    return undefined;
  }

  /** Health of every upstream, for /ready. */
  async readiness(signal: AbortSignal): Promise<{ target: boolean; drafts: boolean[] }> {
    const check = async (s: LazyServer) => {
      try {
        const { server } = await s.get(signal);
        return await server.healthy(signal);
      } catch {
        return false;
      }
    };
    const [target, ...drafts] = await Promise.all([check(this.targetServer), ...this.draftServers.map(check)]);
    return { target: target ?? false, drafts };
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    await Promise.all([this.targetServer.close(), ...this.draftServers.map((d) => d.close())]);
  }
}
