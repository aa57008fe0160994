import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { DsdConfig } from '../config/types.js';
import type { Logger } from '../logger.js';
import type { PairSnapshot } from '../speculative/estimates.js';
import { type RunningDsd, startDsd } from './main.js';

/** How often workers hand their pair estimates to the primary, and it hands the best back. */
const SHARE_EVERY_MS = 2_000;

/** Messages between the primary and its workers. */
type ClusterMessage =
  | { t: 'dsd:listening'; baseUrl: string }
  | { t: 'dsd:estimates'; snapshots: Record<string, PairSnapshot> }
  | { t: 'dsd:metrics'; id: number }
  | { t: 'dsd:metrics-reply'; id: number; text: string };

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}

/** The snapshot that knows most (proposals seen at the first position), per draft URL. */
function merge(into: Map<string, PairSnapshot>, from: Record<string, PairSnapshot>): void {
  for (const [url, s] of Object.entries(from)) {
    const known = into.get(url);
    if (known === undefined || (s.acceptance.tried[0] ?? 0) > (known.acceptance.tried[0] ?? 0)) into.set(url, s);
  }
}

/**
 * The primary of `dsd serve --workers N`: forks N workers that share the listening port (node:cluster
 * hands connections round-robin), replaces a worker that dies, aggregates /metrics over all of
 * them (prom-client's AggregatorRegistry: counters and histograms summed), and shares per-pair
 * estimates: every 2 s each worker sends its own, the primary keeps the best-informed per draft and
 * sends those to every worker, which adopts them where it knows clearly less (a new worker starts
 * warm; a busy one keeps its live data). Resolves with the first worker's base URL.
 */
export async function runPrimary(
  config: DsdConfig,
  logger: Logger,
  workers: number,
): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const aggregator = new AggregatorRegistry();
  const best = new Map<string, PairSnapshot>();
  let stopping = false;
  let listening: (url: string) => void = () => {};
  let failed: (err: Error) => void = () => {};
  let started = false;
  const firstUrl = new Promise<string>((resolve, reject) => {
    listening = (url) => {
      started = true;
      resolve(url);
    };
    failed = reject;
  });
  const killAll = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  };
  const onMessage = (worker: Worker, m: unknown) => {
    if (!isMessage(m)) return;
    if (m.t === 'dsd:listening') listening(m.baseUrl);
    else if (m.t === 'dsd:estimates') merge(best, m.snapshots);
    else if (m.t === 'dsd:metrics')
      aggregator.clusterMetrics().then(
        (text) => worker.send({ t: 'dsd:metrics-reply', id: m.id, text } satisfies ClusterMessage),
        (err: Error) => worker.send({ t: 'dsd:metrics-reply', id: m.id, text: `# error: ${err.message}\n` }),
      );
  };
  cluster.on('message', (w, m) => onMessage(w, m));
  cluster.on('exit', (w, code, signal) => {
    if (stopping) return;
    if (!started) {
      // A worker that cannot start (bad target, port taken) would fail the same way again.
      stopping = true;
      killAll();
      failed(new Error('a worker could not start (its reason is above)'));
      return;
    }
    logger.error('worker died; starting another', { pid: w.process.pid, code, signal });
    cluster.fork({ DSD_WORKER: '1' });
  });
  for (let i = 0; i < workers; i++) cluster.fork({ DSD_WORKER: '1' });
  const share = setInterval(() => {
    const snapshots = Object.fromEntries(best);
    for (const w of Object.values(cluster.workers ?? {})) w?.send({ t: 'dsd:estimates', snapshots });
  }, SHARE_EVERY_MS);
  share.unref();
  const baseUrl = await firstUrl;
  logger.info('dsd workers started', { workers, port: config.port });
  return {
    baseUrl,
    stop: async () => {
      stopping = true;
      clearInterval(share);
      const all = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      await Promise.all(
        all.map(
          (w) =>
            new Promise<void>((resolve) => {
              w.once('exit', () => resolve());
              w.process.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/**
 * One worker: dsd as usual, whose /metrics asks the primary for all workers' metrics, and which
 * trades pair estimates with the primary (see runPrimary).
 */
export async function runWorker(config: DsdConfig, logger: Logger): Promise<RunningDsd> {
  let next = 1;
  const waiting = new Map<number, (text: string) => void>();
  const metricsText = () => {
    const id = next++;
    return new Promise<string>((resolve) => {
      waiting.set(id, resolve);
      process.send?.({ t: 'dsd:metrics', id } satisfies ClusterMessage);
    });
  };
  const running = await startDsd(config, logger, { metricsText });
  // The primary's aggregator asks every worker for its registry: constructing one here installs
  // prom-client's worker-side answer, and this worker's registry is the one it reads.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([running.router.dsd.metrics.registry]);
  const pool = running.router.dsd.upstreams.drafts;
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.t === 'dsd:metrics-reply') {
      waiting.get(m.id)?.(m.text);
      waiting.delete(m.id);
    } else if (m.t === 'dsd:estimates') {
      const adopted = pool.adoptEstimates(m.snapshots);
      if (adopted.length > 0) logger.debug('adopted pair estimates from other workers', { drafts: adopted });
    }
  });
  const share = setInterval(() => {
    process.send?.({ t: 'dsd:estimates', snapshots: pool.estimatesSnapshot() } satisfies ClusterMessage);
  }, SHARE_EVERY_MS);
  share.unref();
  process.send?.({ t: 'dsd:listening', baseUrl: running.baseUrl } satisfies ClusterMessage);
  return {
    ...running,
    stop: async (graceMs?: number) => {
      clearInterval(share);
      await running.stop(graceMs);
    },
  };
}
