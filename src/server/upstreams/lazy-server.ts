import { type ConnectOptions, connectServer } from '../../backends/detect.js';
import type { UpstreamConfig } from '../../config/types.js';
import type { UpstreamRole } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { ConnectedServer } from './connected-server.js';

/** Connects one role lazily: the first caller connects, failures are retried by the next caller. */
export class LazyServer {
  private pending: Promise<ConnectedServer> | undefined;
  private connected: ConnectedServer | undefined;

  constructor(
    private readonly url: string,
    private readonly role: UpstreamRole,
    private readonly config: UpstreamConfig,
    private readonly logger: Logger,
    private readonly http: ConnectOptions['http'] = {},
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
    const connect = this.http?.connect ?? connectServer;
    const server = await connect(
      {
        url: this.url,
        role: this.role,
        kind: this.config.kind,
        model: this.config.model,
        apiKey: this.config.apiKey,
        timeouts: t,
        linkEncoding: this.config.linkEncoding,
        http: this.http,
      },
      signal,
    );
    try {
      const info = await server.describe(signal);
      this.connected = { server, info };
      this.logger.info('upstream connected', {
        role: this.role,
        url: this.url,
        kind: info.kind,
        model: info.modelId,
        contextTokens: info.contextTokens,
        slots: info.parallelSlots,
      });
      return this.connected;
    } catch (err) {
      await server.close();
      throw err;
    }
  }

  /** Whether the server can be reached and answers its health endpoint (false on any failure). */
  async healthy(signal: AbortSignal): Promise<boolean> {
    try {
      return await (await this.get(signal)).server.healthy(signal);
    } catch {
      return false;
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
