import type { UpstreamObservation } from '../backends/http.js';
import { RetryBudget } from '../backends/retry-budget.js';
import type { ModelServer, ServerInfo } from '../backends/types.js';
import type { DsdConfig } from '../config/types.js';
import { DsdError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DraftPool } from './draft-pool.js';
import { LazyServer } from './lazy-server.js';

/** A connected upstream server and what it said about itself. */
export interface ConnectedServer {
  server: ModelServer;
  info: ServerInfo;
}

/** Observation hooks for upstream traffic (metrics). */
export interface UpstreamHooks {
  observe?: (o: UpstreamObservation) => void;
  onRetry?: (role: 'target' | 'draft', url: string) => void;
}

/** The target and the draft pool of one dsd instance. */
export class Upstreams {
  private readonly targetServer: LazyServer;
  /** The drafts, assigned per request. */
  readonly drafts: DraftPool;

  constructor(config: DsdConfig, logger: Logger, hooks: UpstreamHooks = {}) {
    const targetUrl = config.target.urls[0];
    if (targetUrl === undefined) throw new DsdError('internal_error', 'no target URL configured (DSD_TARGET_URL)');
    const common = { ca: config.caCertificates, observe: hooks.observe };
    const retry = { maxAttempts: config.targetRetryAttempts, budget: new RetryBudget(), maxRetryAfterMs: 5_000, onRetry: () => hooks.onRetry?.('target', targetUrl) };
    this.targetServer = new LazyServer(targetUrl, 'target', config.target, logger, { ...common, retry });
    // Drafts are never retried: a failing draft costs a fallback, which is cheaper than waiting.
    this.drafts = new DraftPool(config, logger, (signal) => this.target(signal), undefined, common);
  }

  /** The target, connected (kind detected, model described) on first use. */
  target(signal: AbortSignal): Promise<ConnectedServer> {
    return this.targetServer.get(signal);
  }

  /**
   * Startup check: a draft whose vocabulary differs from the target's is an error naming both;
   * unreachable drafts are returned for a warning.
   */
  async verifyDrafts(signal: AbortSignal): Promise<{ unreachable: string[] }> {
    const { unreachable, mismatch } = await this.drafts.verifyAll(signal);
    if (mismatch !== undefined) throw new DsdError('vocabulary_mismatch', mismatch);
    return { unreachable };
  }

  /** Health of every upstream, for /ready. */
  async readiness(signal: AbortSignal): Promise<{ target: boolean; drafts: boolean[] }> {
    const target = async () => {
      try {
        return await (await this.targetServer.get(signal)).server.healthy(signal);
      } catch {
        return false;
      }
    };
    const [t, drafts] = await Promise.all([target(), this.drafts.health(signal)]);
    return { target: t, drafts };
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    await Promise.all([this.targetServer.close(), this.drafts.close()]);
  }
}
