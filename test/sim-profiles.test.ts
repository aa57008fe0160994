import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AcceptanceModel, GreedyDraftSequence } from '../src/sim/acceptance-model.js';
import { stepMs } from '../src/sim/profiles.js';
import { type StrategyResult, simulate, simulateStrategy } from '../src/sim/run.js';
import type { Scenario, StrategySpec } from '../src/sim/scenario.js';
import { loadScenario } from '../src/sim/sim-command.js';
import { applySweep } from '../src/sim/sweep.js';
import { oneUserScenario } from './sim-scenarios.js';

const examples = join(import.meta.dirname, '../examples/sim');

/** One user, no network: the setting where a stream's cost has a closed form. */
function oneUser(alpha: number, strategies: StrategySpec[], oneWayMs = 0): Scenario {
  return oneUserScenario({
    name: 'one user',
    seed: 5,
    alpha,
    stepFixedMs: 5,
    stepPerTokenMs: 2,
    draftMsPerToken: 0,
    outputTokens: 3000,
    requests: 3,
    oneWayMs,
    strategies,
  });
}

const tpot = (r: StrategyResult | undefined) => (r as StrategyResult).tpotMs.p50;

describe('DSD-Si device profiles', () => {
  it('a step costs fixed + max(weights read, positions) + sequences', () => {
    const gpu = { fixedMs: 2, perPositionMs: 0.01, perSequenceMs: 0.1, weightsReadMs: 3 };
    expect(stepMs(gpu, 1, 1)).toBeCloseTo(5.1, 12);
    // Below the bandwidth floor, verifying 5 positions costs what one does.
    expect(stepMs(gpu, 5, 1)).toBe(stepMs(gpu, 1, 1));
    expect(stepMs(gpu, 1000, 10)).toBeCloseTo(2 + 10 + 1, 12);
    expect(stepMs({ fixedMs: 5, perPositionMs: 2 }, 3, 4)).toBe(11);
  });

  it('a profile with only a fixed and a per-position part gives the two figures’ results, to the number', () => {
    const strategies: StrategySpec[] = [{ kind: 'target-only' }, { kind: 'dsd-fixed', k: 4, verifier: true }];
    const plain = oneUser(0.8, strategies);
    const profiled = structuredClone(plain);
    profiled.targets.profile = {
      kind: 'target',
      name: 'p',
      origin: { kind: 'measured', how: 'test' },
      step: { fixedMs: 5, perPositionMs: 2 },
    };
    expect(simulate(profiled)).toEqual(simulate(plain));
  });

  it('shipped scenarios load their profiles; a bad or missing profile is a clear error', () => {
    const s = loadScenario(join(examples, 'gpu-70b-single-user.json'));
    expect(s.targets.profile?.step.weightsReadMs).toBeGreaterThan(0);
    expect(s.edges[0]?.draftMsPerToken).toBeCloseTo(1.31);
    expect(s.edges[0]?.profile?.origin.kind).toBe('published');
    const dir = mkdtempSync(join(tmpdir(), 'dsd-profile-'));
    const base = JSON.parse(JSON.stringify(s)) as Record<string, unknown> & { targets: Record<string, unknown> };
    const write = (name: string, v: unknown) => {
      writeFileSync(join(dir, name), JSON.stringify(v));
      return join(dir, name);
    };
    base.targets.profile = 'nowhere.json';
    expect(() => loadScenario(write('a.json', base))).toThrow(/profile nowhere\.json/);
    write('draft.json', { kind: 'draft', name: 'd', origin: { kind: 'measured', how: 'x' }, draftMsPerToken: 1 });
    base.targets.profile = 'draft.json';
    expect(() => loadScenario(write('b.json', base))).toThrow(/a draft profile where a target profile belongs/);
    write('uncited.json', { kind: 'target', name: 't', origin: { kind: 'published', sources: [] }, step: {} });
    base.targets.profile = 'uncited.json';
    expect(() => loadScenario(write('c.json', base))).toThrow(/cites its sources.*step\.fixedMs/);
  });

  it.each([
    // NVIDIA NIM 1.8.0's published ITL by concurrency (the profiles cite them), DSD-Si's within 6 %.
    ['70b', 5000, 500, [18.58, 21.83, 38.75, 59.73]],
    ['8b', 500, 2000, [4.63, 4.58, 5.19, 5.91]],
  ] as const)(
    'the %s profile gives its published inter-token latency at 1, 5, 25, 50 users',
    (size, prompt, output, itl) => {
      const s = loadScenario(join(examples, `gpu-${size}-capacity.json`));
      s.link = { oneWayMs: 0, bandwidthBytesPerS: Infinity };
      s.workload.promptTokens = { kind: 'constant', value: prompt };
      s.workload.outputTokens = { kind: 'uniform', min: output / 2, max: output * 1.5 };
      [1, 5, 25, 50].forEach((users, i) => {
        const run = applySweep(s, 'users', users);
        if (run.workload.arrivals.kind === 'closed-loop')
          run.workload.arrivals = {
            ...run.workload.arrivals,
            requestsPerUser: 8,
            thinkMs: { kind: 'exponential', mean: 50 },
          };
        const simulated = simulateStrategy(run, { kind: 'target-only' }).tpotMs.p50;
        expect(Math.abs(simulated / (itl[i] as number) - 1)).toBeLessThan(0.06);
      });
    },
  );

  it('the CPU profiles fitted here give bench:verifier’s measured figures within 10 %', () => {
    const s = loadScenario(join(examples, 'cpu-verifier-stream.json'));
    // docs/verifier.md, the pinned run: dsd's stream against a client straight from the verifier,
    // at 0 ms (1.46× llama-server alone, the verifier alone 0.96×), 10 and 25 ms one way; at 50 ms
    // the mean of three runs (0.93, 1.00, 1.01).
    const measured: [number, number][] = [
      [0, 1.46 / 0.96],
      [20, 1.19],
      [50, 1.11],
      [100, 0.98],
    ];
    for (const [rtt, ratio] of measured) {
      const [alone, stream] = simulate(applySweep(s, 'rtt', rtt)) as [StrategyResult, StrategyResult];
      expect(Math.abs(alone.msPerToken / stream.msPerToken / ratio - 1)).toBeLessThan(0.1);
    }
    // 16 streams straight from the verifier: 360 tokens/s in the same run.
    const busy = applySweep(s, 'users', 16);
    expect(Math.abs(simulateStrategy(busy, { kind: 'target-only' }).throughputTokensPerS / 360 - 1)).toBeLessThan(0.1);
  });
});

describe('DSD-Si: the stream that follows its target’s window, on the slow day’s costs', () => {
  it('gives the pinned bench:verifier run of that day within 10 %, chains and trees, 10 / 25 / 50 ms', () => {
    const s = loadScenario(join(examples, 'cpu-verifier-stream-slow-day.json'));
    // docs/verifier.md, 2026-12-04: dsd against a client straight from the verifier over the relay.
    const measured: [rtt: number, chains: number, trees: number][] = [
      [20, 1.52, 1.54],
      [50, 1.27, 1.35],
      [100, 1.12, 1.17],
    ];
    for (const [rtt, chains, trees] of measured) {
      const [alone, chain, tree] = simulate(applySweep(s, 'rtt', rtt)) as [
        StrategyResult,
        StrategyResult,
        StrategyResult,
      ];
      expect(Math.abs(alone.msPerToken / chain.msPerToken / chains - 1)).toBeLessThan(0.1);
      expect(Math.abs(alone.msPerToken / tree.msPerToken / trees - 1)).toBeLessThan(0.1);
    }
  });
});

describe('DSD-Si: the stream on a shared verifier', () => {
  it('16 generations on the CPU target: declined drafts shrink the windows and the stream is not slower', () => {
    const s = applySweep(loadScenario(join(examples, 'cpu-verifier-under-load.json')), 'users', 16);
    const alone = simulateStrategy(s, { kind: 'target-only' });
    const stream = simulateStrategy(s, { kind: 'dsd-stream', k: 4 });
    // One position costs 2.2 ms against a fixed 5.05 split 16 ways: the verifier takes about one
    // draft a step, and the edge's window follows (mean acceptance length well under k + 1).
    expect(stream.meanAcceptanceLength).toBeLessThan(2);
    expect(stream.throughputTokensPerS / alone.throughputTokensPerS).toBeGreaterThan(0.97);
    // One generation alone: the window stays k and the stream pays.
    const one = applySweep(s, 'users', 1);
    const ratio =
      simulateStrategy(one, { kind: 'dsd-stream', k: 4 }).throughputTokensPerS /
      simulateStrategy(one, { kind: 'target-only' }).throughputTokensPerS;
    expect(ratio).toBeGreaterThan(1.3);
  });
});

describe('DSD-Si: the stream through a verifier', () => {
  it('with every draft right and proposals that never run out, each step verifies k and commits k + 1', () => {
    const k = 4;
    const [, stream] = simulate(oneUser(1, [{ kind: 'target-only' }, { kind: 'dsd-stream', k, leadTokens: 400 }]));
    expect(Math.abs(tpot(stream) / ((5 + (k + 1) * 2) / (k + 1)) - 1)).toBeLessThan(0.01);
  });

  it('with every draft wrong it is the target alone, next to the target and across a link', () => {
    for (const oneWayMs of [0, 10]) {
      const [alone, stream] = simulate(oneUser(0, [{ kind: 'target-only' }, { kind: 'dsd-stream', k: 4 }], oneWayMs));
      expect(Math.abs(tpot(stream) / tpot(alone) - 1)).toBeLessThan(0.01);
    }
  });

  it('a link costs the stream lone steps, not waits for verdicts: slower with distance, never below the target', () => {
    const results = [0, 10, 25, 50].map((oneWayMs) => {
      const [alone, stream] = simulate(
        oneUser(0.85, [{ kind: 'target-only' }, { kind: 'dsd-stream', k: 4 }], oneWayMs),
      );
      return tpot(alone) / tpot(stream);
    });
    for (let i = 1; i < results.length; i++) expect(results[i]).toBeLessThan(results[i - 1] as number);
    for (const r of results) expect(r).toBeGreaterThan(0.99);
  });

  it('a greedy draft fails at a position for every proposal that reaches it; a branch can cover it', () => {
    let state = 11;
    const rng = () => {
      state = (state * 16807) % 2147483647;
      return state / 2147483647;
    };
    const seq = new GreedyDraftSequence(new AcceptanceModel({ kind: 'iid', rate: 0.7 }, rng), rng, 1);
    const first = seq.matched(0, 50, 0);
    expect(first).toBeLessThan(50);
    for (let at = 1; at <= first; at++) expect(seq.matched(at, 50, 0)).toBe(first - at);
    // With a runner-up always right, one branch carries the proposal past its first miss.
    expect(seq.matched(0, 50, 1)).toBeGreaterThan(first);
  });
});
