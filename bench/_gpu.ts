import { readFileSync } from 'node:fs';
import { simulateStrategy } from '../src/sim/run.js';
import type { Scenario } from '../src/sim/scenario.js';

const prof = JSON.parse(readFileSync(process.env.P as string, 'utf8'));
for (const users of [1, 5, 25, 50, 100, 250]) {
  const sc: Scenario = {
    name: 't',
    seed: 1,
    edges: [{ count: users, draftMsPerToken: 1, concurrency: 1 }],
    targets: {
      count: 1,
      maxBatch: 256,
      stepFixedMs: 0,
      stepPerTokenMs: 0,
      profile: prof,
      verifyTokens: 'shared-prefix',
    },
    link: { oneWayMs: 0, bandwidthBytesPerS: Infinity },
    workload: {
      arrivals: { kind: 'closed-loop', users, requestsPerUser: 8, thinkMs: { kind: 'exponential', mean: 50 } },
      promptTokens: { kind: 'constant', value: Number(process.env.IN ?? 5000) },
      outputTokens: {
        kind: 'uniform',
        min: Number(process.env.OUT ?? 500) / 2,
        max: Number(process.env.OUT ?? 500) * 1.5,
      },
      edgeRouting: 'round-robin',
      targetRouting: 'round-robin',
    },
    acceptance: { kind: 'iid', rate: 0.8 },
    strategies: [],
  };
  const r = simulateStrategy(sc, { kind: 'target-only' });
  console.log(
    users,
    'TPOT p50',
    r.tpotMs.p50.toFixed(2),
    'TTFT p50',
    r.ttftMs.p50.toFixed(0),
    'tok/s',
    r.throughputTokensPerS.toFixed(0),
  );
}
