import { percentile } from '../bench/stats.js';
import { PairEstimates } from '../speculative/estimates.js';
import { type Rng, seededRng } from '../speculative/sampling.js';
import { emptyStats } from '../speculative/stats.js';
import { AcceptanceModel } from './acceptance-model.js';
import { EdgeDevice, type LinkBytes, TargetDevice } from './devices.js';
import { Simulation } from './event-queue.js';
import { draw } from './random.js';
import { type RequestRecord, startRequest } from './request-flow.js';
import { type RoutingPolicy, type Scenario, type StrategySpec, strategyName } from './scenario.js';

/** Latency percentiles (ms). */
export interface SimPercentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** What one strategy achieved on a scenario. */
export interface StrategyResult {
  strategy: string;
  requests: number;
  generatedTokens: number;
  makespanMs: number;
  ttftMs: SimPercentiles;
  tpotMs: SimPercentiles;
  e2eMs: SimPercentiles;
  /** Output tokens per second over the whole run. */
  throughputTokensPerS: number;
  /** Mean time per output token over requests (e2e / tokens). */
  msPerToken: number;
  targetUtilisation: number;
  acceptanceRate: number;
  meanAcceptanceLength: number;
  bytesUp: number;
  bytesDown: number;
  eventsProcessed: number;
}

function pcts(v: number[]): SimPercentiles {
  return { p50: percentile(v, 50), p95: percentile(v, 95), p99: percentile(v, 99) };
}

/** Picks a device index by a routing policy. */
function router(policy: RoutingPolicy, rng: Rng, loads: () => number[]): () => number {
  let next = 0;
  return () => {
    const l = loads();
    switch (policy) {
      case 'random':
        return Math.floor(rng() * l.length);
      case 'round-robin':
        return next++ % l.length;
      case 'join-shortest-queue':
        return l.indexOf(Math.min(...l));
    }
  };
}

/** Simulates one strategy on a scenario (deterministic for the scenario's seed). */
export function simulateStrategy(scenario: Scenario, strategy: StrategySpec): StrategyResult {
  const sim = new Simulation();
  const rng = seededRng(scenario.seed);
  const workloadRng = seededRng(scenario.seed ^ 0x9e3779b9);
  const acceptance = new AcceptanceModel(scenario.acceptance, seededRng(scenario.seed + 17));
  const edges = scenario.edges.flatMap((e) =>
    Array.from({ length: e.count }, () => new EdgeDevice(sim, e, e.link ?? scenario.link)),
  );
  const targets = Array.from({ length: scenario.targets.count }, () => new TargetDevice(sim, scenario.targets));
  const estimates = new Map<string, PairEstimates>();
  const bytes: LinkBytes = { up: 0, down: 0 };
  // Edges are picked by their open requests, as a load balancer counting connections does: their
  // draft queues are empty most of the time (a request is mostly waiting on its target), so
  // routing by those would send every arrival to the first edge with nothing drafting.
  const pickEdge = router(scenario.workload.edgeRouting, rng, () => edges.map((e) => e.requests));
  const pickTarget = router(scenario.workload.targetRouting, rng, () => targets.map((t) => t.load));
  const records: RequestRecord[] = [];
  const launch = (onDone: () => void) => {
    const e = pickEdge();
    const edge = edges[e] as EdgeDevice;
    edge.requests += 1;
    const t = pickTarget();
    const key = `${e}/${t}`;
    let pair = estimates.get(key);
    if (pair === undefined) {
      pair = new PairEstimates();
      estimates.set(key, pair);
    }
    const record: RequestRecord = {
      arrivalMs: sim.now,
      firstTokenMs: undefined,
      endMs: undefined,
      tokens: 0,
      stats: emptyStats(),
    };
    records.push(record);
    startRequest({
      sim,
      rng,
      scenario,
      strategy,
      acceptance,
      bytes,
      record,
      done: () => {
        edge.requests -= 1;
        onDone();
      },
      edge,
      target: targets[t] as TargetDevice,
      estimates: pair,
      promptTokens: Math.max(1, Math.round(draw(scenario.workload.promptTokens, workloadRng))),
      outputTokens: Math.max(1, Math.round(draw(scenario.workload.outputTokens, workloadRng))),
    });
  };
  const arrivals = scenario.workload.arrivals;
  switch (arrivals.kind) {
    case 'poisson': {
      let t = 0;
      for (let i = 0; i < arrivals.requests; i++) {
        t += -Math.log(1 - workloadRng()) * (1000 / arrivals.ratePerS);
        sim.schedule(t, () => launch(() => undefined));
      }
      break;
    }
    case 'trace':
      for (const at of arrivals.arrivalsMs) sim.schedule(at, () => launch(() => undefined));
      break;
    case 'closed-loop':
      for (let u = 0; u < arrivals.users; u++) {
        let left = arrivals.requestsPerUser;
        const next = () => {
          if (left-- <= 0) return;
          launch(() => sim.schedule(draw(arrivals.thinkMs, workloadRng), next));
        };
        sim.schedule(draw(arrivals.thinkMs, workloadRng), next);
      }
      break;
  }
  sim.run();
  return summarizeRun(strategy, records, targets, bytes, sim);
}

function summarizeRun(
  strategy: StrategySpec,
  records: RequestRecord[],
  targets: TargetDevice[],
  bytes: LinkBytes,
  sim: Simulation,
): StrategyResult {
  const done = records.filter((r) => r.endMs !== undefined);
  const start = Math.min(...records.map((r) => r.arrivalMs));
  const end = Math.max(...done.map((r) => r.endMs as number));
  const makespan = Math.max(1e-9, end - start);
  const tokens = done.reduce((s, r) => s + r.tokens, 0);
  const drafted = done.reduce((s, r) => s + r.stats.draftTokens, 0);
  const accepted = done.reduce((s, r) => s + r.stats.acceptedTokens, 0);
  const rounds = done.reduce((s, r) => s + r.stats.rounds, 0);
  return {
    strategy: strategyName(strategy),
    requests: done.length,
    generatedTokens: tokens,
    makespanMs: makespan,
    ttftMs: pcts(done.map((r) => (r.firstTokenMs as number) - r.arrivalMs)),
    tpotMs: pcts(
      done.filter((r) => r.tokens > 1).map((r) => ((r.endMs as number) - (r.firstTokenMs as number)) / (r.tokens - 1)),
    ),
    e2eMs: pcts(done.map((r) => (r.endMs as number) - r.arrivalMs)),
    throughputTokensPerS: (tokens * 1000) / makespan,
    msPerToken: done.reduce((s, r) => s + ((r.endMs as number) - r.arrivalMs) / r.tokens, 0) / Math.max(1, done.length),
    targetUtilisation: targets.reduce((s, t) => s + t.busyMs, 0) / (targets.length * makespan),
    acceptanceRate: drafted === 0 ? 0 : accepted / drafted,
    meanAcceptanceLength: rounds === 0 ? 0 : 1 + accepted / rounds,
    bytesUp: bytes.up,
    bytesDown: bytes.down,
    eventsProcessed: sim.processed,
  };
}

/** Simulates every strategy of a scenario. */
export function simulate(scenario: Scenario): StrategyResult[] {
  return scenario.strategies.map((s) => simulateStrategy(scenario, s));
}
