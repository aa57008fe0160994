import type { Connector } from '../../backends/detect.js';
import type { UpstreamObservation } from '../../backends/http.js';
import { RetryBudget } from '../../backends/retry-budget.js';
import type { DsdConfig } from '../../config/types.js';
import { DsdError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { ConnectedServer } from './connected-server.js';
import { DraftPool } from './draft-pool.js';
import { TargetPool } from './target-pool.js';

export type { ConnectedServer };

/** Observation hooks for upstream traffic (metrics). */
export interface UpstreamHooks {
  observe?: (o: UpstreamObservation) => void;
  onRetry?: (role: 'target' | 'draft', url: string) => void;
  /** Makes the server objects (default: HTTP clients detected by kind). */
  connect?: Connector;
}

/** The target and the draft pool of one dsd instance. */
export class Upstreams {
  /** The target replicas. */
  readonly targets: TargetPool;
  /** The drafts, assigned per request. */
  readonly drafts: DraftPool;

  constructor(config: DsdConfig, logger: Logger, hooks: UpstreamHooks = {}) {
    if (config.target.urls.length === 0)
      throw new DsdError('internal_error', 'no target URL configured (DSD_TARGET_URL)');
    const common = {
      ca: config.caCertificates,
      clientCert: config.clientCertificate,
      observe: hooks.observe,
      connections: config.upstreamConnections,
      connect: hooks.connect,
    };
    // Each replica has its own retry budget, and its retries are counted under its own URL.
    const retry = (url: string) => ({
      maxAttempts: config.targetRetryAttempts,
      budget: new RetryBudget(),
      maxRetryAfterMs: 5_000,
      onRetry: () => hooks.onRetry?.('target', url),
    });
    this.targets = new TargetPool(config, logger, (url) => ({ ...common, retry: retry(url) }));
    // Drafts are never retried: a failing draft costs a fallback, which is cheaper than waiting.
    this.drafts = new DraftPool(config, logger, (signal) => this.target(signal), undefined, common);
  }

  /**
   * A target replica, connected (kind detected, model described) on first use: the one the
   * conversation key `keyOf` gives prefers, skipping `exclude` and replicas that are down.
   */
  target(signal: AbortSignal, keyOf?: () => string, exclude?: ReadonlySet<string>): Promise<ConnectedServer> {
    return this.targets.get(signal, keyOf, exclude);
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

  private readonly speculating = new Map<string, number>();

  /** Marks a speculative request in flight on a target replica; returns the function that ends it. */
  enterSpeculation(targetUrl: string): () => void {
    this.speculating.set(targetUrl, (this.speculating.get(targetUrl) ?? 0) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.speculating.set(targetUrl, (this.speculating.get(targetUrl) ?? 1) - 1);
    };
  }

  /** Speculative requests in flight on a target replica. */
  speculativeOn(targetUrl: string): number {
    return this.speculating.get(targetUrl) ?? 0;
  }

  /** Traffic counters of every connected upstream (one keep-alive pool each). */
  links(): { role: string; upstream: string; bytesSent: number; bytesReceived: number; requests: number }[] {
    const out: { role: string; upstream: string; bytesSent: number; bytesReceived: number; requests: number }[] = [];
    for (const t of this.targets.connected())
      out.push({ role: 'target', upstream: t.server.baseUrl, ...t.server.counters });
    for (const d of this.drafts.connected())
      out.push({ role: 'draft', upstream: d.server.baseUrl, ...d.server.counters });
    return out;
  }

  /** Health of every upstream, for /ready. */
  async readiness(signal: AbortSignal): Promise<{ target: boolean; targets: boolean[]; drafts: boolean[] }> {
    const [targets, drafts] = await Promise.all([this.targets.health(signal), this.drafts.health(signal)]);
    return { target: targets.some(Boolean), targets, drafts };
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    await Promise.all([this.targets.close(), this.drafts.close()]);
  }
}
