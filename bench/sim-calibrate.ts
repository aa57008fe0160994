/**
 * DSD-Si against reality: dsd on the real llama-server pair (heavy target stories260K-ff32k-f32 and
 * the q4_0 draft) with fixed k, across the delay proxy at 0 and 25 ms RTT, recording rounds in a
 * DSD_TRACE_FILE. The simulator is calibrated from the RTT-0 trace alone (draft ms per token, the
 * verification time, acceptance replayed from the trace) and then predicts dsd's ms/token at both
 * RTTs; the table compares prediction with measurement.
 *
 *   npm run bench:sim-calibrate [-- --k 3 --tokens 128]
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import { locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/logger.js';
import { createApp } from '../src/server/http/app.js';
import { simulateStrategy } from '../src/sim/run.js';
import type { Scenario } from '../src/sim/scenario.js';
import { timedCompletion } from './emulated-pair.js';

const { values } = parseArgs({
  options: {
    k: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '128' },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
const K = Number(values.k);
const TOKENS = Number(values.tokens);
const PROMPTS = [
  'Once upon a time',
  'One day, a little girl named Lily',
  'Tom and his dog went to the park.',
  'The sun was shining and the birds were singing.',
  'Ben found a shiny rock under the tree.',
  'The cat was very hungry.',
];
const model = (f: string) => resolve(values.models, f);
const bin = await locateLlamaServer((line) => console.error(line));
const target = await startLlamaServer({
  bin,
  modelPath: model('stories260K-ff32k-f32.gguf'),
  alias: 'target',
  slots: K + 2,
  threads: 1,
});
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'draft',
  slots: 1,
  threads: 1,
});
const dir = mkdtempSync(join(tmpdir(), 'dsd-calibrate-'));

interface TraceRound {
  k: number;
  accepted: number;
  draftMs: number;
  verifyMs: number;
}
async function measure(rtt: number): Promise<{ msPerToken: number; rounds: TraceRound[]; promptTokens: number }> {
  const proxy = new DelayProxy({
    targetHost: '127.0.0.1',
    targetPort: Number(new URL(target.url).port),
    oneWayDelayMs: rtt / 2,
  });
  await proxy.listen();
  const trace = join(dir, `rtt-${rtt}.jsonl`);
  const { app, router } = createApp({
    config: loadConfig(
      { DSD_TRACE_FILE: trace },
      {
        target: { urls: [proxy.url], kind: 'llamacpp' },
        draft: { urls: [draft.url], kind: 'llamacpp' },
        speculation: { window: K, draftAhead: false },
      },
    ),
    logger: createLogger('silent'),
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await timedCompletion(url, 'The little bird', 16); // warm-up (not traced below)
  const warmLines = readFileSync(trace, 'utf8').trim().split('\n').length;
  let ms = 0;
  let tokens = 0;
  let promptTokens = 0;
  for (const p of PROMPTS) {
    const r = await timedCompletion(url, p, TOKENS);
    ms += r.ms;
    tokens += r.tokens;
    promptTokens += r.usage?.prompt_tokens ?? 0;
  }
  server.closeAllConnections();
  server.close();
  await router.close();
  await proxy.close();
  const rounds = readFileSync(trace, 'utf8')
    .trim()
    .split('\n')
    .slice(warmLines)
    .map((l) => JSON.parse(l) as TraceRound);
  return { msPerToken: ms / tokens, rounds, promptTokens: promptTokens / PROMPTS.length };
}

function predict(calibration: TraceRound[], rtt: number, promptTokens: number): number {
  const draftMsPerToken = calibration.reduce((s, r) => s + r.draftMs, 0) / calibration.reduce((s, r) => s + r.k, 0);
  const verifyMs = calibration.reduce((s, r) => s + r.verifyMs, 0) / calibration.length;
  const scenario: Scenario = {
    name: 'calibrated from the RTT-0 trace',
    seed: 1,
    edges: [{ count: 1, draftMsPerToken, concurrency: 1 }],
    // One request at a time: the measured verification time is the whole step.
    targets: { count: 1, maxBatch: 1, stepFixedMs: verifyMs, stepPerTokenMs: 0, verifyTokens: 'separate-slots' },
    link: { oneWayMs: rtt / 2, bandwidthBytesPerS: Infinity },
    workload: {
      arrivals: { kind: 'closed-loop', users: 1, requestsPerUser: 40, thinkMs: { kind: 'constant', value: 0 } },
      promptTokens: { kind: 'constant', value: Math.round(promptTokens) },
      outputTokens: { kind: 'constant', value: TOKENS },
      edgeRouting: 'round-robin',
      targetRouting: 'round-robin',
    },
    acceptance: { kind: 'trace', rounds: calibration.map((r) => ({ k: r.k, accepted: r.accepted })) },
    strategies: [],
    wire: { bytesPerPromptToken: 0, bytesPerRequest: 0, bytesPerPosition: 0 },
  };
  return simulateStrategy(scenario, { kind: 'dsd-fixed', k: K }).msPerToken;
}

const at0 = await measure(0);
const at25 = await measure(25);
console.log(
  `\nDSD-Si calibrated from the RTT-0 trace (${at0.rounds.length} rounds, k = ${K}) vs dsd measured on real ` +
    `llama-servers, ${PROMPTS.length} prompts × ${TOKENS} tokens\n`,
);
console.log('| RTT ms | measured ms/token | predicted ms/token | error |\n|---|---|---|---|');
for (const [rtt, m] of [
  [0, at0],
  [25, at25],
] as const) {
  const p = predict(at0.rounds, rtt, m.promptTokens);
  console.log(
    markdownRow([
      rtt,
      m.msPerToken.toFixed(2),
      p.toFixed(2),
      `${((100 * (p - m.msPerToken)) / m.msPerToken).toFixed(1)} %`,
    ]),
  );
}
rmSync(dir, { recursive: true, force: true });
await Promise.all([target.stop(), draft.stop()]);
