import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { markdownRow } from '../bench/markdown.js';
import { ProgressBar } from '../bench/progress.js';
import { renderLineChart } from '../bench/svg-chart.js';
import { capacityUnderBound } from './capacity.js';
import { type DraftProfile, parseProfile, type TargetProfile } from './profiles.js';
import { type StrategyResult, simulate } from './run.js';
import { DEFAULT_SCENARIO, type Scenario } from './scenario.js';
import { applySweep, parseSweep } from './sweep.js';

/** Usage of `dsd sim`. */
export const SIM_HELP = `dsd sim — DSD-Si, a discrete-event simulator of edge–cloud speculative decoding

Usage:
  dsd sim [--scenario FILE.json] [--sweep PARAM=FROM:TO:STEP | PARAM=V1,V2,…] [--tpot-bound MS] [--out DIR]

  --scenario FILE   a scenario (see examples/sim/*.json); default: 8 edges, 2 targets, 10 ms one-way
  --sweep SPEC      vary one parameter: rtt (ms), acceptance, edges, targets, rate (requests/s),
                    draft-ms (edge draft per token), node-draft-ms (single-node draft step),
                    stages (a partitioned target's), stage-link-ms (one way between stages),
                    users (closed-loop users)
  --tpot-bound MS   with a sweep of load (edges, users): the largest load each strategy serves with
                    TPOT p95 within MS, and tokens/s per target there (capacity planning)
  --out DIR         write report.md, results.json and SVG charts there (default sim-results/<time>);
                    with a sweep: e2e latency, throughput, speed-up and TPOT p95 (with the bound)
`;

/** Reads a scenario file, with JSON-friendly defaults (no bandwidth = unlimited). */
export function loadScenario(path: string): Scenario {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Scenario;
  for (const key of ['name', 'edges', 'targets', 'link', 'workload', 'acceptance', 'strategies'] as const) {
    if (s[key] === undefined) throw new Error(`${path}: '${key}' is required`);
  }
  resolveProfiles(s, path);
  const unlimited = (b: number | null | undefined) => (b === undefined || b === null || b === 0 ? Infinity : b);
  s.seed ??= 1;
  if (s.acceptance.kind === 'trace' && s.acceptance.file !== undefined) {
    const tracePath = resolve(dirname(path), s.acceptance.file);
    s.acceptance.rounds = readFileSync(tracePath, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { k: number; accepted: number });
    if (s.acceptance.rounds.length === 0) throw new Error(`${tracePath}: no rounds`);
  }
  const stages = s.targets.stages;
  if (stages !== undefined && (!Number.isInteger(stages.count) || stages.count < 1 || !(stages.linkOneWayMs >= 0)))
    throw new Error(`${path}: targets.stages needs a whole count ≥ 1 and linkOneWayMs ≥ 0`);
  s.link.bandwidthBytesPerS = unlimited(s.link.bandwidthBytesPerS);
  for (const e of s.edges) if (e.link) e.link.bandwidthBytesPerS = unlimited(e.link.bandwidthBytesPerS);
  return s;
}

/** Reads a profile a scenario names by path (relative to the scenario file). */
function readProfile(ref: unknown, scenarioPath: string, kind: 'target' | 'draft'): TargetProfile | DraftProfile {
  const where = typeof ref === 'string' ? resolve(dirname(scenarioPath), ref) : `${scenarioPath} (inline profile)`;
  let raw: unknown = ref;
  if (typeof ref === 'string') {
    try {
      raw = JSON.parse(readFileSync(where, 'utf8'));
    } catch (err) {
      throw new Error(`${scenarioPath}: profile ${ref}: ${(err as Error).message}`);
    }
  }
  const profile = parseProfile(raw, where);
  if (profile.kind !== kind) throw new Error(`${where}: a ${profile.kind} profile where a ${kind} profile belongs`);
  return profile;
}

/**
 * Replaces profile paths by their contents: a target's profile prices its steps; a draft's fills
 * the edge's figures it leaves out, so one edge group may still override a profile's figure.
 */
function resolveProfiles(s: Scenario, path: string): void {
  if (s.targets.profile !== undefined) {
    const profile = readProfile(s.targets.profile, path, 'target') as TargetProfile;
    s.targets.profile = profile;
    s.targets.stepFixedMs ??= profile.step.fixedMs;
    s.targets.stepPerTokenMs ??= profile.step.perPositionMs;
  }
  for (const e of s.edges) {
    if (e.profile === undefined) continue;
    const profile = readProfile(e.profile, path, 'draft') as DraftProfile;
    e.profile = profile;
    e.draftMsPerToken ??= profile.draftMsPerToken;
    for (const key of ['draftMsPerRequest', 'draftMsPerContextToken', 'draftPrefillMsPerToken'] as const) {
      const v = profile[key];
      if (e[key] === undefined && v !== undefined) e[key] = v;
    }
  }
  if (!Number.isFinite(s.targets.stepFixedMs) || !Number.isFinite(s.targets.stepPerTokenMs))
    throw new Error(`${path}: targets need stepFixedMs and stepPerTokenMs, or a profile`);
  for (const e of s.edges)
    if (!Number.isFinite(e.draftMsPerToken)) throw new Error(`${path}: each edge needs draftMsPerToken, or a profile`);
}

const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—');

/** A Markdown table of strategy results (speed-up against the first target-only result). */
export function simTable(results: readonly StrategyResult[], extraColumn?: { name: string; value: string }): string {
  const base = results.find((r) => r.strategy === 'target only');
  const head = markdownRow([
    `${extraColumn ? `${extraColumn.name} | ` : ''}strategy`,
    'ms/token',
    'speed-up',
    'TTFT p50 ms',
    'TPOT p50 ms',
    'e2e p50 / p95 / p99 ms',
    'tokens/s',
    'target util.',
    'acceptance',
    'mean acc. length',
    'MB up / down',
  ]);
  const rows = results.map((r) =>
    markdownRow([
      `${extraColumn ? `${extraColumn.value} | ` : ''}${r.strategy}`,
      f(r.msPerToken),
      `${base ? `${f(base.msPerToken / r.msPerToken)}×` : '—'}`,
      f(r.ttftMs.p50, 0),
      f(r.tpotMs.p50),
      `${f(r.e2eMs.p50, 0)} / ${f(r.e2eMs.p95, 0)} / ${f(r.e2eMs.p99, 0)}`,
      f(r.throughputTokensPerS, 0),
      f(r.targetUtilisation),
      f(r.acceptanceRate),
      f(r.meanAcceptanceLength),
      `${f(r.bytesUp / 1e6, 1)} / ${f(r.bytesDown / 1e6, 1)}`,
    ]),
  );
  return [head, head.replace(/[^|]+/g, '---'), ...rows].join('\n');
}

/** Runs `dsd sim`; returns the results by swept value (one entry when nothing is swept). */
export async function simCommand(
  args: string[],
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<{ value: number | undefined; results: StrategyResult[] }[]> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      scenario: { type: 'string' },
      sweep: { type: 'string' },
      out: { type: 'string' },
      'tpot-bound': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    log(SIM_HELP);
    return [];
  }
  const scenario = values.scenario ? loadScenario(values.scenario) : DEFAULT_SCENARIO;
  const sweep = values.sweep ? parseSweep(values.sweep) : undefined;
  const out = resolve(values.out ?? join('sim-results', new Date().toISOString().replace(/[:.]/g, '-')));
  mkdirSync(out, { recursive: true });
  const started = performance.now();
  const runs: { value: number | undefined; results: StrategyResult[] }[] = [];
  if (sweep === undefined) {
    runs.push({ value: undefined, results: simulate(scenario) });
  } else {
    const bar = new ProgressBar(sweep.values.length, `sweep ${sweep.param}`);
    for (const v of sweep.values) {
      runs.push({ value: v, results: simulate(applySweep(scenario, sweep.param, v)) });
      bar.tick();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const tables = runs.map((r) =>
    simTable(r.results, sweep && r.value !== undefined ? { name: sweep.param, value: String(r.value) } : undefined),
  );
  const bound = values['tpot-bound'] === undefined ? undefined : Number(values['tpot-bound']);
  if (bound !== undefined && !(bound > 0)) throw new Error('--tpot-bound takes a time per output token in ms, > 0');
  const capacity =
    bound === undefined || sweep === undefined
      ? ''
      : `\n\n${capacityTable(sweep.param, runs as { value: number; results: StrategyResult[] }[], bound, scenario)}`;
  const report =
    `# DSD-Si: ${scenario.name}\n\nSeed ${scenario.seed}; simulated in ${seconds.toFixed(2)} ` +
    `s.\n\n${tables.join('\n\n')}${capacity}\n`;
  writeFileSync(join(out, 'report.md'), report);
  writeFileSync(join(out, 'results.json'), JSON.stringify({ scenario, sweep, runs }, null, 2));
  if (sweep !== undefined) writeCharts(out, sweep.param, runs as { value: number; results: StrategyResult[] }[], bound);
  log(report);
  log(`written to ${out}`);
  return runs;
}

/** The capacity table: how far each strategy's load goes under a TPOT bound. */
function capacityTable(
  param: string,
  runs: { value: number; results: StrategyResult[] }[],
  boundMs: number,
  scenario: Scenario,
): string {
  const rows = capacityUnderBound(runs, boundMs, scenario.targets.count);
  const head = markdownRow([
    'strategy',
    `largest ${param} with TPOT p95 ≤ ${boundMs} ms`,
    'tokens/s per target',
    'TPOT p95 ms',
  ]);
  const body = rows.map((r) =>
    markdownRow([
      r.strategy,
      r.largest === undefined ? 'none swept' : String(r.largest),
      r.tokensPerSPerTarget === undefined ? '—' : f(r.tokensPerSPerTarget, 0),
      r.tpotP95Ms === undefined ? '—' : f(r.tpotP95Ms),
    ]),
  );
  return [`## Capacity under a TPOT bound of ${boundMs} ms`, '', head, head.replace(/[^|]+/g, '---'), ...body].join(
    '\n',
  );
}

function writeCharts(
  out: string,
  param: string,
  runs: { value: number; results: StrategyResult[] }[],
  tpotBoundMs: number | undefined,
): void {
  const names = runs[0]?.results.map((r) => r.strategy) ?? [];
  const series = (y: (r: StrategyResult, all: StrategyResult[]) => number) =>
    names.map((name) => ({
      name,
      points: runs.map(
        (run) => [run.value, y(run.results.find((r) => r.strategy === name) as StrategyResult, run.results)] as const,
      ),
    }));
  const label = param === 'rtt' ? 'RTT (ms)' : param;
  writeFileSync(
    join(out, `${param}-e2e-latency.svg`),
    renderLineChart({
      title: `End-to-end latency (p50) vs ${label}`,
      xLabel: label,
      yLabel: 'ms',
      series: series((r) => r.e2eMs.p50),
    }),
  );
  writeFileSync(
    join(out, `${param}-throughput.svg`),
    renderLineChart({
      title: `Throughput vs ${label}`,
      xLabel: label,
      yLabel: 'tokens/s',
      series: series((r) => r.throughputTokensPerS),
    }),
  );
  // The capacity chart: where each strategy's inter-token latency crosses the bound.
  const bound =
    tpotBoundMs === undefined
      ? []
      : [{ name: `bound (${tpotBoundMs} ms)`, points: runs.map((run) => [run.value, tpotBoundMs] as const) }];
  writeFileSync(
    join(out, `${param}-tpot-p95.svg`),
    renderLineChart({
      title: `Time per output token (p95) vs ${label}`,
      xLabel: label,
      yLabel: 'ms',
      series: [...series((r) => r.tpotMs.p95), ...bound],
    }),
  );
  writeFileSync(
    join(out, `${param}-speedup.svg`),
    renderLineChart({
      title: `Speed-up over the target alone vs ${label}`,
      xLabel: label,
      yLabel: 'speed-up (×)',
      series: series(
        (r, all) => (all.find((x) => x.strategy === 'target only')?.msPerToken ?? Number.NaN) / r.msPerToken,
      ),
    }),
  );
}
