/**
 * dsd's own CPU per speculative round against real llama-servers, next to the yardstick measured in
 * the same run (one minimal undici exchange with the target): the efficiency issue's measurement.
 * Small f32 target and q4_0 draft (../shared/models), one thread each; dsd in its own process
 * (dist/cli.js, one worker, fixed k = 4), 4 clients, greedy, 96 tokens per request. The target has
 * 4·(k+1) = 20 slots: a llama.cpp target scores a round's k+1 prompts in k+1 slots, and dsd shares
 * the slots among the generations in flight, so with 8 (as this benchmark had until December 2026)
 * each of 4 clients got 2 and rounds ran at k = 1. It prints the window the rounds had.
 *
 * `--verifier`: the target is a `dsd verifier` process with the same model (rounds over the link,
 * DSD_VERIFIER_MODE=rounds), so what a round costs the edge is the link's frames, no HTTP per round.
 *
 * It measures two batches of `--requests` after `--warmup` requests: the first is what a freshly
 * started proxy spends while V8 still compiles its paths, the second the steady state. Both are
 * set against one yardstick, the mean of its runs before and after them (each warmed for 200
 * exchanges; a gap between the two says the VM was busy).
 *
 * `--draft-ahead off` shows what draft-ahead's extra draft requests cost (and what its hidden draft
 * time buys: tokens/s over the 4 clients). `--cpu-prof DIR` writes dsd's V8 CPU profile there when
 * it exits (the profiler's own cost inflates the figures, writev most).
 *
 *   npm run build && npm run bench:round-cpu [-- --requests 120 --warmup 8 --verifier --draft-ahead off]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { metricIn, startDsdProcess } from '../src/bench/dsd-process.js';
import { locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { minimalExchangeCpuMs } from '../src/bench/minimal-exchange.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';
import { realModelOptions, startVerifierProcess } from './verifier-common.js';

const { values } = parseArgs({
  options: {
    ...realModelOptions({ prompts: '5', tokens: '96', delays: '0' }),
    requests: { type: 'string', default: '120' },
    warmup: { type: 'string', default: '8' },
    verifier: { type: 'boolean', default: false },
    'draft-ahead': { type: 'string', default: 'on' },
    'cpu-prof': { type: 'string' },
  },
});
const model = (f: string) => resolve(values.models, f);
const bin = await locateLlamaServer((line) => console.error(line));
const target = await startLlamaServer({
  bin,
  modelPath: model('stories260K-f32.gguf'),
  alias: 'target',
  slots: 20,
  threads: 1,
});
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'draft',
  slots: 8,
  threads: 1,
});
const verifier = values.verifier
  ? await startVerifierProcess(['--model', model('stories260K-f32.gguf'), '--threads', '1', '--sequences', '8'])
  : undefined;

/** Draft completion requests dsd has made (all outcomes), from a /metrics page's text. */
function draftRequests(text: string): number {
  const lines = text.split('\n').filter((l) => l.startsWith('dsd_upstream_request_duration_seconds_count{'));
  return lines
    .filter((l) => l.includes('role="draft"') && l.includes('operation="completion"'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

const dsd = await startDsdProcess(
  {
    DSD_TARGET_URL: verifier?.url ?? target.url,
    DSD_VERIFIER_MODE: 'rounds',
    DSD_DRAFT_URL: draft.url,
    DSD_WORKERS: '1',
    DSD_WINDOW: '4',
    DSD_DRAFT_AHEAD: values['draft-ahead'],
    DSD_ACCEPT_ANY_MODEL: 'true',
  },
  values['cpu-prof'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(values['cpu-prof'])}`],
);
try {
  const prompts = STORY_PROMPTS.slice(0, Number(values.prompts));
  const one = async (i: number) => {
    const body = {
      model: 'target',
      prompt: prompts[i % prompts.length],
      max_tokens: Number(values.tokens),
      temperature: 0,
    };
    const r = await fetch(`${dsd.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`dsd answered ${r.status}: ${await r.text()}`);
    tokens += ((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
  };
  let tokens = 0;
  for (let i = 0; i < Number(values.warmup); i++) await one(i);
  /** dsd's counters from one read of /metrics: one render at each end of a batch, not four. */
  const counters = async () => {
    const text = await (await fetch(`${dsd.url}/metrics`)).text();
    return {
      cpuS: metricIn(text, 'dsd_process_cpu_seconds_total'),
      rounds: metricIn(text, 'dsd:spec_decode_num_drafts_total'),
      draftTokens: metricIn(text, 'dsd:spec_decode_num_draft_tokens_total'),
      drafts: draftRequests(text),
    };
  };
  /** One measured batch of `requests` over 4 clients: dsd's CPU and rounds between two metric reads. */
  const phase = async () => {
    tokens = 0;
    const before = await counters();
    const perClient = Math.ceil(Number(values.requests) / 4);
    const wall0 = performance.now();
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        for (let i = 0; i < perClient; i++) await one(c * perClient + i);
      }),
    );
    const wallS = (performance.now() - wall0) / 1000;
    const after = await counters();
    const cpuMs = (after.cpuS - before.cpuS) * 1000;
    const rounds = after.rounds - before.rounds;
    const draftTokens = after.draftTokens - before.draftTokens;
    const drafts = after.drafts - before.drafts;
    return { cpuMs, rounds, window: draftTokens / rounds, draftsPerRound: drafts / rounds, tokens, wallS };
  };
  // Two batches in one run against one yardstick: the first still pays for V8's JIT warming up on
  // dsd's paths (its first few thousand rounds), the second is what a long-running proxy costs.
  // The yardstick before and after the batches: a VM that got busy in between shows as a gap.
  const exchangeBeforeMs = await minimalExchangeCpuMs(target.url, { requests: 1000, nPredict: 1 });
  const cold = await phase();
  const steady = await phase();
  const exchangeAfterMs = await minimalExchangeCpuMs(target.url, { requests: 1000, nPredict: 1 });
  const exchangeMs = (exchangeBeforeMs + exchangeAfterMs) / 2;
  const report = (name: string, p: Awaited<ReturnType<typeof phase>>) => {
    const perRoundMs = p.cpuMs / p.rounds;
    console.log(
      `  ${name}: dsd CPU per round ${perRoundMs.toFixed(3)} ms over ${p.rounds} rounds ` +
        `(${p.window.toFixed(2)} drafts per round) = ${(perRoundMs / exchangeMs).toFixed(2)} minimal exchanges; ` +
        `${p.draftsPerRound.toFixed(2)} draft requests per round (draft-ahead included), without their exchanges ` +
        `${(perRoundMs - p.draftsPerRound * exchangeMs).toFixed(3)} ms; ${(p.cpuMs / p.tokens).toFixed(3)} ms per ` +
        `generated token (${(p.tokens / p.rounds).toFixed(2)} per round); ${(p.tokens / p.wallS).toFixed(0)} tokens/s`,
    );
  };
  console.log(
    `\n${verifier === undefined ? 'real llama-servers' : 'a dsd verifier as the target'} ` +
      `(small f32 target, q4_0 draft), 4 clients, k = 4, draft-ahead ${values['draft-ahead']}, ` +
      `${values.warmup} warm-up requests, then two batches of ${values.requests}; ` +
      `one minimal exchange with the target ${exchangeMs.toFixed(3)} ms (the mean of ` +
      `${exchangeBeforeMs.toFixed(3)} before the batches and ${exchangeAfterMs.toFixed(3)} after)`,
  );
  report(`first ${values.requests} (JIT warming)`, cold);
  report(`next ${values.requests} (steady state)`, steady);
} finally {
  dsd.child.kill('SIGTERM');
  verifier?.child.kill('SIGTERM');
  await Promise.all([target.stop(), draft.stop()]);
}
