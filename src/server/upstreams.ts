import { connectServer } from '../backends/detect.js';
import { vocabularyMismatch } from '../backends/vocabulary-check.js';
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

/** Whether a draft was checked against the target's vocabulary. */
type VocabularyState = { kind: 'unchecked' } | { kind: 'ok' } | { kind: 'mismatch'; reason: string };

/** The target and the draft pool of one dsd instance. */
export class Upstreams {
  private readonly targetServer: LazyServer;
  private readonly draftServers: { lazy: LazyServer; url: string; vocabulary: VocabularyState }[];

  constructor(config: DsdConfig, private readonly logger: Logger) {
    const targetUrl = config.target.urls[0];
    if (targetUrl === undefined) throw new DsdError('internal_error', 'no target URL configured (DSD_TARGET_URL)');
    this.targetServer = new LazyServer(targetUrl, 'target', config.target, logger);
    this.draftServers = config.draft.urls.map((url) => ({ lazy: new LazyServer(url, 'draft', config.draft, logger), url, vocabulary: { kind: 'unchecked' } }));
  }

  /** The target, connected (kind detected, model described) on first use. */
  target(signal: AbortSignal): Promise<ConnectedServer> {
    return this.targetServer.get(signal);
  }

  /** True when at least one draft is configured. */
  get hasDrafts(): boolean {
    return this.draftServers.length > 0;
  }

  /**
   * The first draft that connects and shares the target's vocabulary, or undefined (the request
   * then goes to the target alone). The vocabulary is checked on first use and again after a
   * draft failed, so a draft that comes back is checked before it is trusted.
   */
  async draft(signal: AbortSignal): Promise<ConnectedServer | undefined> {
    for (const entry of this.draftServers) {
      try {
        const draft = await entry.lazy.get(signal);
        if (entry.vocabulary.kind === 'unchecked') await this.checkVocabulary(entry, draft, signal);
        if (entry.vocabulary.kind === 'ok') return draft;
      } catch {
        // try the next one; the caller falls back to target-only decoding
      }
    }
    return undefined;
  }

  private async checkVocabulary(entry: Upstreams['draftServers'][number], draft: ConnectedServer, signal: AbortSignal): Promise<void> {
    const target = await this.target(signal);
    const reason = await vocabularyMismatch(target, draft, signal);
    entry.vocabulary = reason === undefined ? { kind: 'ok' } : { kind: 'mismatch', reason };
    if (reason !== undefined) {
      this.logger.error('draft does not share the target vocabulary; it will not be used', { draft: entry.url, target: target.server.baseUrl, reason });
    }
  }

  /** Forgets a draft's vocabulary check after it failed, so it is checked again when it answers. */
  draftFailed(baseUrl: string): void {
    const entry = this.draftServers.find((d) => d.url === baseUrl);
    if (entry !== undefined && entry.vocabulary.kind === 'ok') entry.vocabulary = { kind: 'unchecked' };
  }

  /**
   * Startup check of every draft: a vocabulary mismatch is an error naming both servers; an
   * unreachable draft is only reported (requests degrade to the target alone until it answers).
   */
  async verifyDrafts(signal: AbortSignal): Promise<{ unreachable: string[] }> {
    const unreachable: string[] = [];
    const target = await this.target(signal);
    for (const entry of this.draftServers) {
      let draft: ConnectedServer;
      try {
        draft = await entry.lazy.get(signal);
      } catch {
        unreachable.push(entry.url);
        continue;
      }
      await this.checkVocabulary(entry, draft, signal);
      if (entry.vocabulary.kind === 'mismatch') {
        throw new DsdError('vocabulary_mismatch', `the draft at ${entry.url} and the target at ${target.server.baseUrl} do not share a vocabulary: ${entry.vocabulary.reason}`);
      }
    }
    return { unreachable };
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
    const [target, ...drafts] = await Promise.all([check(this.targetServer), ...this.draftServers.map((d) => check(d.lazy))]);
    return { target: target ?? false, drafts };
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    await Promise.all([this.targetServer.close(), ...this.draftServers.map((d) => d.lazy.close())]);
  }
}
