import type { ConnectOptions } from '../../backends/detect.js';
import type { DsdConfig } from '../../config/types.js';
import { UpstreamError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { rendezvousRank } from './affinity.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { ConnectedServer } from './connected-server.js';
import { LazyServer } from './lazy-server.js';

/** One replica's state. */
interface Replica {
  url: string;
  lazy: LazyServer;
  breaker: CircuitBreaker;
  /** The health probe running while its breaker is open, if any. */
  probe: NodeJS.Timeout | undefined;
}

/** How much above the mean a replica's open generations may go before its conversations spill over. */
const LOAD_BOUND = 1.25;

/** First and longest wait between health probes of a replica that is down (jittered). */
const PROBE_MIN_MS = 250;
const PROBE_MAX_MS = 2_000;

/**
 * The target replicas (several `DSD_TARGET_URL`s: vLLM servers of one model, or `dsd verifier`s).
 * A conversation goes to the same replica by rendezvous hashing on its prefix, like prefix-aware
 * routers, so that replica's prefix cache stays warm, unless that replica holds more than 1.25×
 * the mean of the generations open (consistent hashing with bounded loads): then it spills to
 * the next in its ranking. A replica that is down is skipped (circuit breaker) and probed on
 * /health with backoff and jitter until it answers again; a verifier that is draining is
 * skipped for new generations.
 */
export class TargetPool {
  private readonly replicas: Replica[];
  private closed = false;

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
      probe: undefined,
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
    const ordered = this.replicas.length === 1 ? this.replicas : this.boundedLoad(this.ranked(keyOf()));
    // Breakers first; if every replica is held open, try them anyway rather than fail without trying.
    const usable = (r: Replica) => !exclude.has(r.url) && r.lazy.current?.server.draining !== true;
    const candidates = ordered.filter((r) => usable(r) && r.breaker.state !== 'open');
    for (const replica of candidates.length > 0 ? candidates : ordered.filter(usable)) {
      try {
        const connected = await replica.lazy.get(signal);
        replica.breaker.succeeded();
        return connected;
      } catch (err) {
        if (signal.aborted) throw err;
        this.failed(replica.url);
        lastError = err;
      }
    }
    throw lastError ?? new UpstreamError('upstream_unavailable', 'no target replica is available', { role: 'target' });
  }

  /**
   * The ranking with replicas over the load bound moved behind the others (in their own order).
   * Only replicas that count their open generations (verifiers) take part.
   */
  private boundedLoad(ranked: Replica[]): Replica[] {
    const loads = ranked.map((r) => r.lazy.current?.server.openSessions ?? 0);
    const total = loads.reduce((a, b) => a + b, 0);
    const bound = Math.ceil((LOAD_BOUND * (total + 1)) / ranked.length);
    const under = ranked.filter((_, i) => (loads[i] as number) < bound);
    return under.length === ranked.length
      ? ranked
      : [...under, ...ranked.filter((_, i) => (loads[i] as number) >= bound)];
  }

  /** The replicas in `key`'s rendezvous order. */
  private ranked(key: string) {
    return [...this.replicas].sort((a, b) => rendezvousRank(key, b.url) - rendezvousRank(key, a.url));
  }

  /**
   * Records that a replica failed (it could not be reached, or it died under a generation); its
   * conversations move on, and it is probed until it answers again.
   */
  failed(url: string): void {
    const replica = this.replicas.find((r) => r.url === url);
    if (replica === undefined) return;
    replica.breaker.failed();
    this.probe(replica, PROBE_MIN_MS);
  }

  /**
   * Probes a replica that is down on /health, waiting `delayMs` (times a jitter of 0.5–1, so edges
   * do not probe a restarting verifier in step), doubling to PROBE_MAX_MS; the first answer closes
   * its breaker, so a restarted replica takes conversations again within seconds.
   */
  private probe(replica: Replica, delayMs: number): void {
    if (replica.probe !== undefined || this.closed) return;
    replica.probe = setTimeout(
      async () => {
        const up = await replica.lazy.healthy(AbortSignal.timeout(2_000));
        replica.probe = undefined;
        if (up) replica.breaker.succeeded();
        else this.probe(replica, Math.min(PROBE_MAX_MS, delayMs * 2));
      },
      delayMs * (0.5 + Math.random() / 2),
    );
    replica.probe.unref();
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
    this.closed = true;
    for (const r of this.replicas) clearTimeout(r.probe);
    await Promise.all(this.replicas.map((r) => r.lazy.close()));
  }
}
