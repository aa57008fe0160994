import { describe, expect, it } from 'vitest';
import { capacityUnderBound } from '../src/sim/capacity.js';
import { EdgeDevice } from '../src/sim/devices.js';
import { Simulation } from '../src/sim/event-queue.js';
import { type StrategyResult, simulate, simulateStrategy } from '../src/sim/run.js';
import { DEFAULT_SCENARIO, type Scenario } from '../src/sim/scenario.js';
import { loadScenario } from '../src/sim/sim-command.js';
import { applySweep } from '../src/sim/sweep.js';
import { oneUserScenario } from './sim-scenarios.js';

/** One request at a time, no network, batches of one, constant step cost: the textbook setting. */
function textbook(alpha: number, k: number, c: number): Scenario {
  const step = 10;
  return oneUserScenario({
    name: 'textbook',
    seed: 3,
    alpha,
    stepFixedMs: step,
    stepPerTokenMs: 0,
    draftMsPerToken: c * step,
    outputTokens: 6000,
    requests: 4,
    strategies: [{ kind: 'target-only' }, { kind: 'dsd-fixed', k }],
  });
}

describe('DSD-Si', () => {
  it('the event queue runs events in time order, ties in scheduling order', () => {
    const sim = new Simulation();
    const seen: string[] = [];
    sim.schedule(5, () => seen.push('b'));
    sim.schedule(1, () => {
      seen.push('a');
      sim.schedule(4, () => seen.push('c'));
    });
    sim.schedule(9, () => seen.push('d'));
    sim.run();
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    expect(sim.now).toBe(9);
  });

  it.each([
    [0.5, 2, 0.05],
    [0.7, 4, 0.1],
    [0.9, 8, 0.05],
    [0.8, 3, 0.2],
  ])(
    'zero network, no batching, i.i.d. α=%s, k=%s, c=%s: speed-up equals (1 − α^(k+1)) / ((1 − α)(kc + 1)) within 1 %%',
    (alpha, k, c) => {
      const [alone, dsd] = simulate(textbook(alpha, k, c));
      const simulated = (alone as { msPerToken: number }).msPerToken / (dsd as { msPerToken: number }).msPerToken;
      const analytic = (1 - alpha ** (k + 1)) / ((1 - alpha) * (k * c + 1));
      expect(Math.abs(simulated / analytic - 1)).toBeLessThan(0.01);
    },
  );

  it.each([
    [0.9, 4, 0.05, 20, 2],
    [0.8, 4, 0.1, 20, 1],
    [0.9, 8, 0.05, 40, 2],
  ])(
    'early verification (α=%s, k=%s, c=%s, %s ms one-way, %s ahead, batching target) matches the planner ' +
      'formula within 10 %% and beats one round per round trip',
    (alpha, k, c, oneWayMs, depth) => {
      const step = 10;
      const base = textbook(alpha, k, c);
      const scenario: Scenario = {
        ...base,
        targets: { ...base.targets, maxBatch: 16 },
        link: { oneWayMs, bandwidthBytesPerS: Infinity },
        strategies: [
          { kind: 'dsd-fixed', k, draftAhead: true, aheadDepth: depth },
          { kind: 'dsd-fixed', k, draftAhead: true },
        ],
      };
      const [early, serial] = simulate(scenario) as { msPerToken: number }[];
      const verify = 2 * oneWayMs + step;
      const hit = alpha ** (k + 1);
      const expected = (1 - alpha ** (k + 1)) / (1 - alpha);
      const formula =
        ((1 - hit) * (k * c * step + verify) + hit * Math.max((k + 1) * c * step, verify / (depth + 1))) / expected;
      expect(Math.abs((early?.msPerToken as number) / formula - 1)).toBeLessThan(0.1);
      expect(early?.msPerToken).toBeLessThan(0.9 * (serial?.msPerToken as number));
    },
  );

  it('an edge reports a draft request’s time with its wait for a slot, as a real edge measures it', () => {
    const sim = new Simulation();
    const edge = new EdgeDevice(sim, { count: 1, draftMsPerToken: 1, concurrency: 1 }, DEFAULT_SCENARIO.link);
    const elapsed: number[] = [];
    edge.run(10, (ms) => elapsed.push(ms));
    edge.run(10, (ms) => elapsed.push(ms));
    sim.run();
    // The second waited 10 ms for the only slot: a planner fed 10 would underprice busy edges.
    expect(elapsed).toEqual([10, 20]);
  });

  it('join-shortest-queue spreads requests over edges by their open requests', () => {
    // Two edges, the first behind a 50 ms link. Its requests mostly wait on that link with nothing
    // drafting, so routed by draft work in flight every arrival went to it; by open requests, the
    // near edge takes its share.
    const far = { oneWayMs: 50, bandwidthBytesPerS: Infinity };
    const near = { oneWayMs: 0, bandwidthBytesPerS: Infinity };
    const base = textbook(0.8, 4, 0.1);
    const scenario = (links: [typeof far, typeof far]): Scenario => ({
      ...base,
      edges: links.map((link) => ({ count: 1, draftMsPerToken: 1, concurrency: 1, link })),
      targets: { ...base.targets, maxBatch: 8 },
      workload: {
        ...base.workload,
        arrivals: { kind: 'poisson', ratePerS: 20, requests: 40 },
        outputTokens: { kind: 'constant', value: 100 },
        edgeRouting: 'join-shortest-queue',
      },
    });
    const farOnly = simulateStrategy(scenario([far, far]), { kind: 'dsd-fixed', k: 4 });
    const mixed = simulateStrategy(scenario([far, near]), { kind: 'dsd-fixed', k: 4 });
    // Half on each: (35.7 + 10.7) / 2 ≈ 23 ms/token; routed by draft work in flight, 26.5.
    expect(mixed.msPerToken).toBeLessThan(0.7 * farOnly.msPerToken);
  });

  it('is deterministic for a scenario and seed', () => {
    const a = simulateStrategy(DEFAULT_SCENARIO, { kind: 'dsd-adaptive', draftAhead: true });
    const b = simulateStrategy(DEFAULT_SCENARIO, { kind: 'dsd-adaptive', draftAhead: true });
    expect(b).toEqual(a);
    const c = simulateStrategy({ ...DEFAULT_SCENARIO, seed: 2 }, { kind: 'dsd-adaptive', draftAhead: true });
    expect(c.msPerToken).not.toBe(a.msPerToken);
  });

  it('network delay costs distributed speculation a round trip per round, single-node none', () => {
    const near = simulate({
      ...textbook(0.8, 4, 0.1),
      link: { oneWayMs: 0, bandwidthBytesPerS: Infinity },
      strategies: [
        { kind: 'dsd-fixed', k: 4 },
        { kind: 'single-node', k: 4, draftMsPerToken: 1 },
      ],
    });
    const far = simulate({
      ...textbook(0.8, 4, 0.1),
      link: { oneWayMs: 20, bandwidthBytesPerS: Infinity },
      strategies: [
        { kind: 'dsd-fixed', k: 4 },
        { kind: 'single-node', k: 4, draftMsPerToken: 1 },
      ],
    });
    const ms = (r: unknown) => (r as { msPerToken: number }).msPerToken;
    // DSD: every round (≈ 3.36 tokens at α = 0.8, k = 4) pays the 40 ms round trip.
    expect(ms(far[0]) - ms(near[0])).toBeGreaterThan(40 / 3.4 - 1);
    expect(ms(far[0]) - ms(near[0])).toBeLessThan(40 / 3.3 + 1);
    // Single-node: one round trip per request, nothing per round.
    expect(Math.abs(ms(far[1]) - ms(near[1]))).toBeLessThan(0.1);
  });
});

describe('DSD-Si: a partitioned target (pipeline stages with links between them)', () => {
  const strategies: Scenario['strategies'] = [
    { kind: 'target-only' },
    { kind: 'single-node', k: 4, draftMsPerToken: 1 },
    { kind: 'dsd-fixed', k: 4 },
  ];
  const staged = (count: number, linkOneWayMs: number): Scenario => {
    const base = textbook(0.8, 4, 0.1);
    return { ...base, targets: { ...base.targets, stages: { count, linkOneWayMs } }, strategies };
  };

  it('S stages joined by zero-delay links are one device', () => {
    expect(simulate(staged(4, 0))).toEqual(simulate({ ...textbook(0.8, 4, 0.1), strategies }));
  });

  it('each link adds its delay to every step: a token of the target alone, a round of speculation', () => {
    const [alone0, single0, dsd0] = simulate(staged(4, 0)) as [StrategyResult, StrategyResult, StrategyResult];
    const [alone, single, dsd] = simulate(staged(4, 5)) as [StrategyResult, StrategyResult, StrategyResult];
    // Three links of 5 ms: 15 ms more per step. The target alone takes one step per token (and one
    // prefill step per 6000 tokens); a round at α = 0.8, k = 4 commits about 3.36 tokens.
    expect(alone.msPerToken - alone0.msPerToken).toBeCloseTo(15 * (1 + 1 / 6000), 2);
    expect(dsd.msPerToken - dsd0.msPerToken).toBeGreaterThan(15 / 3.4 - 0.2);
    expect(dsd.msPerToken - dsd0.msPerToken).toBeLessThan(15 / 3.3 + 0.2);
    // Single-node rounds cross the stages once too; its draft beside stage 1 crosses none.
    expect(single.msPerToken - single0.msPerToken).toBeGreaterThan(15 / 3.4 - 0.2);
    // So speculation buys more on a partitioned target.
    expect(alone.msPerToken / dsd.msPerToken).toBeGreaterThan(alone0.msPerToken / dsd0.msPerToken);
  });
});

describe('DSD-Si: capacity under an inter-token latency bound', () => {
  const result = (strategy: string, tpotP95: number, tokensPerS: number) =>
    ({ strategy, tpotMs: { p50: 0, p95: tpotP95, p99: 0 }, throughputTokensPerS: tokensPerS }) as StrategyResult;

  it('the largest load met without a break from the smallest up, and what each target delivers there', () => {
    const runs = [
      { value: 4, results: [result('a', 20, 400), result('b', 40, 300)] },
      { value: 1, results: [result('a', 10, 100), result('b', 12, 120)] },
      { value: 2, results: [result('a', 15, 200), result('b', 29, 250)] },
      // A point back under the bound past the knee does not count.
      { value: 8, results: [result('a', 31, 500), result('b', 25, 900)] },
      { value: 16, results: [result('a', 29, 600), result('b', 25, 900)] },
    ];
    expect(capacityUnderBound(runs, 30, 2)).toEqual([
      { strategy: 'a', largest: 4, tokensPerSPerTarget: 200, tpotP95Ms: 20 },
      { strategy: 'b', largest: 2, tokensPerSPerTarget: 125, tpotP95Ms: 29 },
    ]);
    expect(capacityUnderBound(runs, 5, 1)[0]).toEqual({
      strategy: 'a',
      largest: undefined,
      tokensPerSPerTarget: undefined,
      tpotP95Ms: undefined,
    });
  });

  it('the users sweep of the shipped capacity scenario: more users, longer TPOT for the target alone', () => {
    const base = loadScenario(new URL('../examples/sim/capacity.json', import.meta.url).pathname);
    const alone = (users: number) =>
      simulateStrategy(applySweep(base, 'users', users), { kind: 'target-only' }).tpotMs.p50;
    expect(alone(16)).toBeGreaterThan(alone(2));
  });
});

describe('dsd sim command', () => {
  it('sweeps a parameter and writes report.md, results.json and SVG charts with one series per strategy', async () => {
    const { mkdtempSync, readFileSync, readdirSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { simCommand } = await import('../src/sim/sim-command.js');
    const out = mkdtempSync(join(tmpdir(), 'dsd-sim-'));
    try {
      const runs = await simCommand(['--sweep', 'rtt=0:40:20', '--out', out], () => undefined);
      expect(runs.map((r) => r.value)).toEqual([0, 20, 40]);
      expect(readdirSync(out).sort()).toEqual([
        'report.md',
        'results.json',
        'rtt-e2e-latency.svg',
        'rtt-speedup.svg',
        'rtt-throughput.svg',
        'rtt-tpot-p95.svg',
      ]);
      const svg = readFileSync(join(out, 'rtt-e2e-latency.svg'), 'utf8');
      const series = [...svg.matchAll(/<g class="series" data-name="([^"]+)">/g)].map((m) => m[1]);
      expect(series).toEqual(runs[0]?.results.map((r) => r.strategy));
      expect(svg.trim().endsWith('</svg>')).toBe(true);
      // More RTT costs distributed speculation more time per token.
      const dsd = (i: number) => runs[i]?.results.find((r) => r.strategy === 'DSD k=4')?.msPerToken as number;
      expect(dsd(2)).toBeGreaterThan(dsd(0));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('loads every shipped scenario and rejects a bad sweep', async () => {
    const { simCommand } = await import('../src/sim/sim-command.js');
    for (const name of [
      'heterogeneous-edge-cloud',
      'wan-single-user',
      'loaded-cloud',
      'verifier-vs-http',
      'busy-verifier',
      'partitioned-target',
      'capacity',
      'cpu-verifier-stream',
      'cpu-verifier-stream-slow-day',
      'gpu-8b-single-user',
      'gpu-70b-single-user',
      'gpu-8b-capacity',
      'gpu-70b-capacity',
    ]) {
      const s = loadScenario(new URL(`../examples/sim/${name}.json`, import.meta.url).pathname);
      expect(s.strategies.length).toBeGreaterThan(2);
      expect(s.link.bandwidthBytesPerS).toBeGreaterThan(0);
    }
    await expect(simCommand(['--sweep', 'colour=1:2:1'], () => undefined)).rejects.toThrow(
      /unknown parameter 'colour'/,
    );
  });
});

describe('trace replay', () => {
  it('a scenario can take its acceptance from a DSD_TRACE_FILE', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { loadScenario } = await import('../src/sim/sim-command.js');
    const dir = mkdtempSync(join(tmpdir(), 'dsd-trace-sim-'));
    try {
      const rounds = Array.from({ length: 400 }, (_, i) => ({
        k: 4,
        accepted: i % 2 === 0 ? 4 : 1,
        draftMs: 1,
        verifyMs: 10,
      }));
      writeFileSync(join(dir, 'rounds.jsonl'), rounds.map((r) => JSON.stringify(r)).join('\n'));
      const scenario = {
        ...DEFAULT_SCENARIO,
        acceptance: { kind: 'trace', file: 'rounds.jsonl' },
        strategies: [{ kind: 'dsd-fixed', k: 4 }],
      };
      writeFileSync(
        join(dir, 's.json'),
        JSON.stringify(scenario, (_k, v) => (v === Infinity ? 0 : v)),
      );
      const loaded = loadScenario(join(dir, 's.json'));
      const [r] = simulate(loaded);
      // Half the rounds accept all 4, half accept 1: position 1 always, positions 2–4 half the time.
      expect(r?.acceptanceRate).toBeGreaterThan(0.55);
      expect(r?.acceptanceRate).toBeLessThan(0.7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('16 generations on one CPU verifier: it verifies the drafts worth its time, near the target alone', async () => {
    const { loadScenario } = await import('../src/sim/sim-command.js');
    const scenario = loadScenario(new URL('../examples/sim/busy-verifier.json', import.meta.url).pathname);
    const results = simulate(scenario);
    const by = (name: string) => results.find((r) => r.strategy === name)!;
    const alone = by('target only').msPerToken;
    const k4 = by('DSD k=4 via verifier');
    // Verifying all 4 drafts of 16 generations costs about 0.89× the target alone (measured without
    // the rule); the verifier takes one or two of them and stays within 8 % of it.
    expect(k4.msPerToken).toBeLessThan(1.08 * alone);
    expect(k4.meanAcceptanceLength).toBeLessThan(2.6);
    expect(by('DSD adaptive via verifier').msPerToken).toBeLessThan(1.08 * alone);
  });

  it('a verifier beside a CPU llama.cpp target beats per-round HTTP, with a fraction of the bytes', async () => {
    const { loadScenario } = await import('../src/sim/sim-command.js');
    const scenario = loadScenario(new URL('../examples/sim/verifier-vs-http.json', import.meta.url).pathname);
    const results = simulate(scenario);
    const by = (name: string) => results.find((r) => r.strategy === name)!;
    const http = by('DSD k=4 + ahead');
    const verifier = by('DSD k=4 via verifier + ahead');
    // (k+1)(k+2)/2 = 15 tokens per round over HTTP against k+1 = 5 in one sequence.
    expect(verifier.msPerToken).toBeLessThan(0.7 * http.msPerToken);
    expect(verifier.msPerToken).toBeLessThan(0.9 * by('target only').msPerToken);
    expect(verifier.bytesUp).toBeLessThan(0.1 * http.bytesUp);
  });
});
