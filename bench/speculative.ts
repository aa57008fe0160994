/**
 * Milliseconds per generated token on the heavy target (stories260K-ff32k-f32) with the q4_0
 * draft, side by side in one run, requests interleaved so machine noise cancels:
 *   (a) dsd (draft and target as separate llama-servers, one thread each),
 *   (b) the target alone,
 *   (c) llama-server's own speculative mode on the same pair (--spec-type draft-simple).
 *
 *   npm run bench:speculative [-- --tokens 128 --repeats 2 --windows 2,3,4,6]
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type LlamaProcess, locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { median } from '../src/bench/stats.js';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/logger.js';
import { createApp } from '../src/server/http/app.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '128' },
    repeats: { type: 'string', default: '2' },
    windows: { type: 'string', default: '1,2,3,4' },
    'target-threads': { type: 'string', default: '1' },
    'spec-n-max': { type: 'string', default: '8' },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
const TOKENS = Number(values.tokens);
const WINDOWS = values.windows.split(',').map(Number);
const PROMPTS = [
  'Once upon a time',
  'One day, a little girl named Lily',
  'Tom and his dog went to the park.',
  'The sun was shining and the birds were singing.',
  'Ben found a shiny rock under the tree.',
];
const model = (f: string) => resolve(values.models, f);

const bin = await locateLlamaServer((line) => console.error(line));
const maxSlots = Math.max(...WINDOWS) + 1;
const servers: LlamaProcess[] = [];
const targetThreads = Number(values['target-threads']);
const target = await startLlamaServer({
  bin,
  modelPath: model('stories260K-ff32k-f32.gguf'),
  alias: 'heavy',
  slots: maxSlots,
  threads: targetThreads,
});
servers.push(target);
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'draft',
  slots: 1,
  threads: 1,
});
servers.push(draft);
const ownSpec = await startLlamaServer({
  bin,
  modelPath: model('stories260K-ff32k-f32.gguf'),
  alias: 'heavy',
  slots: 1,
  threads: targetThreads,
  extraArgs: [
    '--spec-type',
    'draft-simple',
    '--spec-draft-model',
    model('stories260K-q4_0.gguf'),
    '--spec-draft-n-max',
    values['spec-n-max'],
    '--threads-draft',
    '1',
  ],
});
servers.push(ownSpec);

const dsdApps = await Promise.all(
  WINDOWS.map(async (window) => {
    const { app, router } = createApp({
      config: loadConfig(
        {},
        { target: { urls: [target.url] }, draft: { urls: [draft.url] }, speculation: { window, windowMax: 16 } },
      ),
      logger: createLogger('silent'),
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { window, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, router };
  }),
);

async function post(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

interface Sample {
  msPerToken: number;
  accepted?: number;
  drafted?: number;
  rounds?: number;
  draftMs?: number;
  verifyMs?: number;
}
const greedy = { temperature: 0, top_k: 0, top_p: 1, min_p: 0, samplers: ['top_k', 'top_p', 'min_p', 'temperature'] };
async function timed(run: () => Promise<{ tokens: number; extra?: Omit<Sample, 'msPerToken'> }>): Promise<Sample> {
  const start = performance.now();
  const { tokens, extra } = await run();
  return { msPerToken: (performance.now() - start) / tokens, ...extra };
}
const runners: Record<string, (prompt: string) => Promise<Sample>> = {
  'target alone': (prompt) =>
    timed(async () => ({
      tokens: (await post(`${target.url}/completion`, { prompt, n_predict: TOKENS, ...greedy })).tokens_predicted,
    })),
  'llama-server speculative': (prompt) =>
    timed(async () => ({
      tokens: (await post(`${ownSpec.url}/completion`, { prompt, n_predict: TOKENS, ...greedy })).tokens_predicted,
    })),
};
for (const d of dsdApps) {
  runners[`dsd k=${d.window}`] = (prompt) =>
    timed(async () => {
      const r = await post(`${d.url}/v1/completions`, { model: 'heavy', prompt, max_tokens: TOKENS, temperature: 0 });
      const u = r.usage.dsd;
      return {
        tokens: r.usage.completion_tokens,
        extra: {
          accepted: u.accepted_tokens,
          drafted: u.draft_tokens,
          rounds: u.rounds,
          draftMs: u.draft_ms,
          verifyMs: u.verify_ms,
        },
      };
    });
}

// Warm-up: one of each (loads pages, fills caches).
for (const run of Object.values(runners)) await run(PROMPTS[0] as string);
const samples: Record<string, Sample[]> = Object.fromEntries(Object.keys(runners).map((k) => [k, []]));
for (let r = 0; r < Number(values.repeats); r++) {
  for (const prompt of PROMPTS)
    for (const [name, run] of Object.entries(runners)) samples[name]!.push(await run(prompt));
}

const base = median(samples['target alone']!.map((s) => s.msPerToken));
console.log(
  `\nheavy target stories260K-ff32k-f32 (${targetThreads} thread(s)) + q4_0 draft (1 thread), greedy, ` +
    `${TOKENS} tokens, ${PROMPTS.length} prompts x ${values.repeats}, interleaved\n`,
);
console.log(
  markdownRow([
    'setup',
    'ms / token (median)',
    'speed-up vs target alone',
    'acceptance',
    'mean acceptance length',
    'draft ms / round',
    'verify ms / round',
  ]),
);
console.log('|---|---|---|---|---|---|---|');
for (const [name, list] of Object.entries(samples)) {
  const m = median(list.map((s) => s.msPerToken));
  const acc = list.reduce((s, x) => s + (x.accepted ?? 0), 0);
  const drafted = list.reduce((s, x) => s + (x.drafted ?? 0), 0);
  const rounds = list.reduce((s, x) => s + (x.rounds ?? 0), 0);
  const accText = drafted > 0 ? `${((100 * acc) / drafted).toFixed(1)} %` : '—';
  const malText = rounds > 0 ? (1 + acc / rounds).toFixed(2) : '—';
  const perRound = (f: (s: Sample) => number | undefined) =>
    rounds > 0 ? (list.reduce((s, x) => s + (f(x) ?? 0), 0) / rounds).toFixed(1) : '—';
  console.log(
    markdownRow([
      name,
      m.toFixed(2),
      `${(base / m).toFixed(2)}×`,
      accText,
      malText,
      perRound((s) => s.draftMs),
      perRound((s) => s.verifyMs),
    ]),
  );
}

for (const d of dsdApps) {
  d.server.closeAllConnections();
  d.server.close();
  await d.router.close();
}
await Promise.all(servers.map((s) => s.stop()));
