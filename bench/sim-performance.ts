/**
 * DSD-Si's own speed: simulating 1 million generated tokens (1000 requests × 1000 tokens over 100
 * edges and 4 targets) and twice that, on one core, to show the cost grows linearly. It times the
 * built simulator (dist/, what `dsd sim` runs): tsx's transpiled source wraps every closure the
 * simulator makes per event, which costs it a third more.
 *
 *   npm run bench:sim
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { markdownRow } from '../src/bench/markdown.js';
import type { Scenario } from '../src/sim/scenario.js';

const built = pathToFileURL(resolve(import.meta.dirname, '../dist/sim/run.js')).href;
const { simulateStrategy } = (await import(built)) as typeof import('../src/sim/run.js');

function scenario(requests: number): Scenario {
  return {
    name: `${requests} requests × 1000 tokens`,
    seed: 1,
    edges: [{ count: 100, draftMsPerToken: 2, concurrency: 2 }],
    targets: { count: 4, maxBatch: 64, stepFixedMs: 20, stepPerTokenMs: 0.05, verifyTokens: 'shared-prefix' },
    link: { oneWayMs: 8, bandwidthBytesPerS: 12_500_000, jitterMs: { kind: 'uniform', min: 0, max: 2 } },
    workload: {
      arrivals: { kind: 'poisson', ratePerS: 20, requests },
      promptTokens: { kind: 'uniform', min: 100, max: 500 },
      outputTokens: { kind: 'constant', value: 1000 },
      edgeRouting: 'join-shortest-queue',
      targetRouting: 'join-shortest-queue',
    },
    acceptance: { kind: 'iid', rate: 0.8 },
    strategies: [],
  };
}

console.log('| simulated | strategy | wall time | events | tokens/s simulated |\n|---|---|---|---|---|');
for (const requests of [1000, 2000]) {
  for (const strategy of [
    { kind: 'dsd-fixed', k: 4 } as const,
    { kind: 'dsd-adaptive', draftAhead: true } as const,
    { kind: 'target-only' } as const,
  ]) {
    const started = performance.now();
    const r = simulateStrategy(scenario(requests), strategy);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      markdownRow([
        `${(r.generatedTokens / 1e6).toFixed(1)} M tokens (${requests} requests)`,
        r.strategy,
        `${seconds.toFixed(2)} s`,
        r.eventsProcessed.toLocaleString('en'),
        `${(r.generatedTokens / seconds / 1e3).toFixed(0)} k`,
      ]),
    );
  }
}
