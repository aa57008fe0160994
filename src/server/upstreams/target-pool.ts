import type { ConnectOptions } from '../../backends/detect.js';
import type { DsdConfig } from '../../config/types.js';
import { UpstreamError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { rendezvousRank } from './affinity.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { ConnectedServer } from './connected-server.js';
import { LazyServer } from './lazy-server.js';

/**
 * The target replicas (several `DSD_TARGET_URL`s, e.g. vLLM servers of one model). A conversation
 * goes to the same replica by rendezvous hashing on its prefix, like prefix-aware routers, so that
 * replica's prefix cache stays warm; a replica that is down is skipped (circuit breaker) and its
 * conversations move to the next replica in their ranking.
 */
export class TargetPool {
  private readonly replicas: { url: string; lazy: LazyServer; breaker: CircuitBreaker }[];

  /** `httpFor` gives each replica its own HTTP options (so each has its own retry budget). */
  constructor(
    config: DsdConfig,
    logger: Logger,
    httpFor: (url: string) => ConnectOptions['http'],
    now: () => number = () => performance.now(),
  ) {
    this.replicas = config.target.urls.map((url) => ({
      url,
      lazy: new LazyServer(url, 'target', config.target, logger, httpFor(url)),
      breaker: new CircuitBreaker({
        failureThreshold: 1,
        cooldownMs: config.speculation.draftCooldownMs,
        maxCooldownMs: 60_000,
        now,
      }),
    }));
  }

  /** Number of replicas. */
  get size(): number {
    return this.replicas.length;
  }

  /**
   * The first replica in the ranking of the conversation key `keyOf` gives that is not excluded,
   * not held open by its breaker and answers; throws the last failure when none does. The key is
   * asked for only when there are replicas to rank: it hashes the prompt.
   */
  async get(
    signal: AbortSignal,
    keyOf: () => string = () => '',
    exclude: ReadonlySet<string> = new Set(),
  ): Promise<ConnectedServer> {
    // Built only when every replica failed: an Error captures a stack, which costs more than a request's routing.
    let lastError: unknown;
    const ordered = this.replicas.length === 1 ? this.replicas : this.ranked(keyOf());
    // Breakers first; if every replica is held open, try them anyway rather than fail without trying.
    const candidates = ordered.filter((r) => !exclude.has(r.url) && r.breaker.state !== 'open');
    for (const replica of candidates.length > 0 ? candidates : ordered.filter((r) => !exclude.has(r.url))) {
      try {
        const connected = await replica.lazy.get(signal);
        replica.breaker.succeeded();
        return connected;
      } catch (err) {
        if (signal.aborted) throw err;
        replica.breaker.failed();
        lastError = err;
      }
    }
    throw lastError ?? new UpstreamError('upstream_unavailable', 'no target replica is available', { role: 'target' });
  }

  /** The replicas in `key`'s rendezvous order. */
  private ranked(key: string) {
    return [...this.replicas].sort((a, b) => rendezvousRank(key, b.url) - rendezvousRank(key, a.url));
  }

  /** Records that a request to a replica failed to connect; its conversations move on. */
  failed(url: string): void {
    this.replicas.find((r) => r.url === url)?.breaker.failed();
  }

  /** Every replica connected so far. */
  connected(): ConnectedServer[] {
    return this.replicas.map((r) => r.lazy.current).filter((c): c is ConnectedServer => c !== undefined);
  }

  /** Health of each replica. */
  health(signal: AbortSignal): Promise<boolean[]> {
    return Promise.all(this.replicas.map((r) => r.lazy.healthy(signal)));
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.lazy.close()));
  }
}
