import type { Scenario, StrategySpec } from '../src/sim/scenario.js';

/** One user at a time, batches of one, a constant link, i.i.d. acceptance: where closed forms hold. */
export function oneUserScenario(o: {
  name: string;
  seed: number;
  alpha: number;
  stepFixedMs: number;
  stepPerTokenMs: number;
  draftMsPerToken: number;
  outputTokens: number;
  requests: number;
  oneWayMs?: number;
  strategies: StrategySpec[];
}): Scenario {
  return {
    name: o.name,
    seed: o.seed,
    edges: [{ count: 1, draftMsPerToken: o.draftMsPerToken, concurrency: 1 }],
    targets: {
      count: 1,
      maxBatch: 1,
      stepFixedMs: o.stepFixedMs,
      stepPerTokenMs: o.stepPerTokenMs,
      verifyTokens: 'shared-prefix',
    },
    link: { oneWayMs: o.oneWayMs ?? 0, bandwidthBytesPerS: Infinity },
    workload: {
      arrivals: { kind: 'closed-loop', users: 1, requestsPerUser: o.requests, thinkMs: { kind: 'constant', value: 0 } },
      promptTokens: { kind: 'constant', value: 8 },
      outputTokens: { kind: 'constant', value: o.outputTokens },
      edgeRouting: 'round-robin',
      targetRouting: 'round-robin',
    },
    acceptance: { kind: 'iid', rate: o.alpha },
    strategies: o.strategies,
  };
}
