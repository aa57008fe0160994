/**
 * Never slower under load (issue #26): N concurrent greedy streams through dsd → `dsd verifier`
 * against the same N streams straight from the verifier, waves interleaved (alone, dsd, alone,
 * dsd, …) so that the machine's drift hits both alike; the ratio reported is the median of the
 * waves' ratios. Heavy target in the verifier (1 thread, 16 sequences); the q4_0 draft on one
 * llama-server (1 thread, 16 slots). Per wave it also sums usage.dsd (draft and verify ms,
 * target-only tokens), the verifier's declined draft tokens, and the CPU the edge process (dsd and
 * the clients) and the draft server spent.
 *
 * `--pin` runs the verifier on core 0 and the edge (this process, the draft server) on core 1.
 *
 *   npm run bench:under-load [-- --concurrency 1,4,16 --waves 3 --tokens 96 --pin]
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { locateLlamaServer, pinSelf, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { buildNativeEngine } from '../src/bench/verifier-process.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';
import { startInProcessDsd } from './in-process-dsd.js';
import { complete, modelName, type Result, realModelOptions, startVerifierProcess } from './verifier-common.js';

const { values } = parseArgs({
  options: {
    ...realModelOptions({ prompts: '16', tokens: '96', delays: '0' }),
    concurrency: { type: 'string', default: '1,4,16' },
    waves: { type: 'string', default: '3' },
    pin: { type: 'boolean', default: false },
    draft: { type: 'string', default: 'stories260K-q4_0.gguf' },
    env: { type: 'string', default: '' },
  },
});
const TARGET_CPUS = values.pin ? '0' : undefined;
const EDGE_CPUS = values.pin ? '1' : undefined;
if (EDGE_CPUS !== undefined) pinSelf(EDGE_CPUS);
const TOKENS = Number(values.tokens);
const WAVES = Number(values.waves);
const levels = values.concurrency.split(',').map(Number);
const maxLevel = Math.max(...levels);
const model = (f: string) => resolve(values.models, f);
const log = (line: string) => console.error(line);

const bin = await locateLlamaServer(log);
const draft = await startLlamaServer({
  bin,
  modelPath: model(values.draft),
  alias: 'draft',
  slots: maxLevel,
  threads: 1,
  cpus: EDGE_CPUS,
});
await buildNativeEngine(['cpu'], log);
const verifier = await startVerifierProcess(
  ['--model', model('stories260K-ff32k-f32.gguf'), '--threads', '1', '--sequences', String(maxLevel), '--gpu', 'cpu'],
  { cpus: TARGET_CPUS },
);
// Extra dsd settings for experiments: --env KEY=VALUE,KEY=VALUE.
const extraEnv = Object.fromEntries(
  values.env
    .split(',')
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const dsd = await startInProcessDsd(
  { target: { urls: [verifier.url] }, draft: { urls: [draft.url] } },
  { DSD_ACCEPT_ANY_MODEL: 'true', ...extraEnv },
);
const name = await modelName(verifier.url);
const verifierPid = verifier.child.pid!;

/** CPU seconds a process has used (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The verifier's counters that a wave reads: declined drafts, evaluations, the steps they served. */
async function counters(): Promise<{ declined: number; evaluations: number; steps: number }> {
  const text = await (await fetch(`${verifier.url}/metrics`)).text();
  const read = (name: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${name} `))
        ?.split(' ')[1] ?? 0,
    );
  return {
    declined: read('dsd_verifier_unverified_draft_tokens_total'),
    evaluations: read('dsd_verifier_evaluations_total'),
    steps: read('dsd_verifier_evaluated_steps_total'),
  };
}

interface Wave {
  rate: number;
  draftMs: number;
  verifyMs: number;
  targetOnly: number;
  tokens: number;
  declined: number;
  evaluations: number;
  steps: number;
  edgeCpuS: number;
  draftCpuS: number;
  verifierCpuS: number;
  wallS: number;
}

type DsdUsage = { draft_ms?: number; verify_ms?: number; target_only_tokens?: number };

async function wave(url: string, n: number, offset: number): Promise<Wave> {
  const before = await counters();
  const edge0 = process.cpuUsage();
  const draft0 = cpuSeconds(draft.pid);
  const verifier0 = cpuSeconds(verifierPid);
  const started = performance.now();
  const results: Result[] = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      complete(url, STORY_PROMPTS[(offset + i) % STORY_PROMPTS.length]!, name, TOKENS),
    ),
  );
  const wallS = (performance.now() - started) / 1000;
  const edge = process.cpuUsage(edge0);
  const usage = (r: Result) => (r.usage?.dsd ?? {}) as DsdUsage;
  const sum = (f: (u: DsdUsage) => number | undefined) => results.reduce((a, r) => a + (f(usage(r)) ?? 0), 0);
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const after = await counters();
  return {
    rate: tokens / wallS,
    draftMs: sum((u) => u.draft_ms),
    verifyMs: sum((u) => u.verify_ms),
    targetOnly: sum((u) => u.target_only_tokens),
    tokens,
    declined: after.declined - before.declined,
    evaluations: after.evaluations - before.evaluations,
    steps: after.steps - before.steps,
    edgeCpuS: (edge.user + edge.system) / 1e6,
    draftCpuS: cpuSeconds(draft.pid) - draft0,
    verifierCpuS: cpuSeconds(verifierPid) - verifier0,
    wallS,
  };
}

/**
 * The wave's prompts, one token each, straight to the verifier, so that both setups find them in its
 * KV: whichever ran second used to reuse the first's prompt (the verifier keeps a sequence's KV for
 * the next generation with the same prefix), which flattered dsd by a batch of prefill per wave.
 */
async function promptsInKv(n: number, offset: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      complete(verifier.url, STORY_PROMPTS[(offset + i) % STORY_PROMPTS.length]!, name, 1),
    ),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f2 = (v: number) => v.toFixed(2);
const print = (line: string) => console.log(line);
print(`\n${values.pin ? 'pinned: verifier on core 0, edge + draft on core 1' : 'unpinned'}; ${TOKENS} tokens a stream`);
print(
  markdownRow([
    'streams',
    'alone tok/s (median)',
    'dsd tok/s (median)',
    'dsd / alone (median of waves)',
    'waves',
    'target-only share',
    'declined drafts / token',
    'edge CPU ms / token (alone → dsd)',
    'draft CPU share of wall',
    'batch occupancy (alone, dsd)',
    'verifier CPU ms / token (alone, dsd)',
  ]),
);
print(markdownRow(Array.from({ length: 11 }, () => '---')));
const perToken = (ws: Wave[]) =>
  (1000 * ws.reduce((a, w) => a + w.verifierCpuS, 0)) / ws.reduce((a, w) => a + w.tokens, 0);
const occupancy = (ws: Wave[]) => ws.reduce((a, w) => a + w.steps, 0) / ws.reduce((a, w) => a + w.evaluations, 0);
await wave(dsd.url, maxLevel, 0); // warm-up: KV, connections, the planner's first estimates
for (const n of levels) {
  const ratios: number[] = [];
  const alone: Wave[] = [];
  const via: Wave[] = [];
  for (let w = 0; w < WAVES; w++) {
    await promptsInKv(n, w * n);
    const a = await wave(verifier.url, n, w * n);
    await promptsInKv(n, w * n);
    const d = await wave(dsd.url, n, w * n);
    alone.push(a);
    via.push(d);
    ratios.push(d.rate / a.rate);
  }
  const total = (f: (w: Wave) => number) => via.reduce((a, w) => a + f(w), 0);
  const last = {
    targetOnly: total((w) => w.targetOnly),
    tokens: total((w) => w.tokens),
    declined: total((w) => w.declined),
    edgeCpuS: total((w) => w.edgeCpuS),
    draftCpuS: total((w) => w.draftCpuS),
    wallS: total((w) => w.wallS),
  };
  const aloneTokens = alone.reduce((a, w) => a + w.tokens, 0);
  const aloneCpu = alone.reduce((a, w) => a + w.edgeCpuS, 0);
  print(
    markdownRow([
      n,
      median(alone.map((w) => w.rate)).toFixed(0),
      median(via.map((w) => w.rate)).toFixed(0),
      `${f2(median(ratios))}× (${ratios.map(f2).join(', ')})`,
      WAVES,
      `${((100 * last.targetOnly) / last.tokens).toFixed(0)} %`,
      f2(last.declined / last.tokens),
      `${f2((1000 * aloneCpu) / aloneTokens)} → ${f2((1000 * last.edgeCpuS) / last.tokens)}`,
      `${((100 * last.draftCpuS) / last.wallS).toFixed(0)} %`,
      `${occupancy(alone).toFixed(1)}, ${occupancy(via).toFixed(1)}`,
      `${f2(perToken(alone))}, ${f2(perToken(via))}`,
    ]),
  );
}

await dsd.close();
verifier.child.kill('SIGTERM');
await draft.stop();
