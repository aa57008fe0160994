/**
 * dsd's own cost, with emulated backends that take no model time: CPU per speculative round and
 * per passthrough request, added latency per request at concurrency 1 and 100, RSS at 100 and
 * 1000 concurrent streams, and throughput as concurrency grows. dsd runs as its own process
 * (dist/cli.js), so its CPU and memory are read from its /metrics; the backends and the load
 * generator run in this process.
 *
 *   npm run build && npm run bench:scale
 */
import { availableParallelism } from 'node:os';
import { metricValue, startDsdProcess } from '../src/bench/dsd-process.js';
import { type BenchPrompt, runLoad } from '../src/bench/load-generator.js';
import { markdownRow } from '../src/bench/markdown.js';
import { minimalExchangeCpuMs } from '../src/bench/minimal-exchange.js';
import { median } from '../src/bench/stats.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';

const models = demoModels();
const target = new LlamaEmulator({ model: models.target, alias: 'target', slots: 64 });
const draft = new LlamaEmulator({ model: models.draft, alias: 'draft', slots: 64 });
await Promise.all([target.listen(), draft.listen()]);

/** dsd in its own process in front of the emulated backends. */
const startDsd = (extraEnv: Record<string, string>) =>
  startDsdProcess({
    DSD_TARGET_URL: target.url,
    DSD_DRAFT_URL: draft.url,
    DSD_MAX_CONCURRENCY: '5000',
    DSD_MAX_QUEUE: '5000',
    ...extraEnv,
  });
const prompts: BenchPrompt[] = [
  { messages: [{ role: 'user', content: 'Once upon a time' }] },
  { messages: [{ role: 'user', content: 'The little bird' }] },
];
const load = (url: string, concurrency: number, requests: number, extra: Partial<Parameters<typeof runLoad>[0]> = {}) =>
  runLoad({
    url,
    model: 'target',
    concurrency,
    requests,
    prompts,
    maxTokens: 64,
    temperature: 0,
    stream: true,
    timeoutMs: 60_000,
    ...extra,
  });

const lines: string[] = [];
// One process for the per-round and per-request CPU and the per-stream memory; the added latency
// is measured with one worker and with one per core (`dsd serve --workers`).
const fixed = await startDsd({ DSD_WINDOW: '4', DSD_WORKERS: '1' });
try {
  // CPU per speculative round (fixed k = 4, so every request speculates).
  await load(fixed.url, 4, 40);
  const [cpu0, rounds0] = [
    await metricValue(fixed.url, 'dsd_process_cpu_seconds_total'),
    await metricValue(fixed.url, 'dsd:spec_decode_num_drafts_total'),
  ];
  await load(fixed.url, 8, 400);
  const [cpu1, rounds1] = [
    await metricValue(fixed.url, 'dsd_process_cpu_seconds_total'),
    await metricValue(fixed.url, 'dsd:spec_decode_num_drafts_total'),
  ];
  const perRoundMs = ((cpu1 - cpu0) * 1000) / (rounds1 - rounds0);
  const exchangeMs = await minimalExchangeCpuMs(target.url);
  lines.push(
    markdownRow([
      'dsd CPU per speculative round (k = 4, 400 requests × 64 tokens)',
      `${perRoundMs.toFixed(3)} ms`,
      `${rounds1 - rounds0} rounds; ${(perRoundMs / exchangeMs).toFixed(2)} minimal exchanges`,
    ]),
    markdownRow([
      'one minimal exchange: an undici POST /completion, its JSON parsed (client CPU, same target)',
      `${exchangeMs.toFixed(3)} ms`,
      '2000 requests, 4 at a time',
    ]),
  );

  // CPU per passthrough request.
  const headers = { 'x-dsd-speculative': 'off' };
  const passthrough = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await fetch(`${fixed.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'target', messages: prompts[0]?.messages, max_tokens: 8, temperature: 0 }),
      });
      await r.text();
    }
  };
  await passthrough(50);
  const c0 = await metricValue(fixed.url, 'dsd_process_cpu_seconds_total');
  await passthrough(500);
  const c1 = await metricValue(fixed.url, 'dsd_process_cpu_seconds_total');
  lines.push(
    markdownRow([
      'dsd CPU per passthrough request (8 tokens, not streamed)',
      `${(((c1 - c0) * 1000) / 500).toFixed(3)} ms`,
      '500 requests',
    ]),
  );
} finally {
  fixed.child.kill('SIGTERM');
}

// Added latency in passthrough: the same requests direct and through dsd, interleaved wave by wave.
for (const workers of ['1', String(availableParallelism())]) {
  const proxy = await startDsd({ DSD_WINDOW: '4', DSD_WORKERS: workers });
  try {
    await added(proxy.url, workers);
  } finally {
    proxy.child.kill('SIGTERM');
  }
}

async function added(url: string, workers: string): Promise<void> {
  for (const [concurrency, waves] of [
    [1, 60],
    [100, 5],
  ] as const) {
    const direct: number[] = [];
    const via: number[] = [];
    for (let w = 0; w < waves; w++) {
      direct.push(...(await load(target.url, concurrency, concurrency, { maxTokens: 8 })).map((r) => r.e2eMs));
      via.push(
        ...(await load(url, concurrency, concurrency, { maxTokens: 8, headers: { 'x-dsd-speculative': 'off' } })).map(
          (r) => r.e2eMs,
        ),
      );
    }
    lines.push(
      markdownRow([
        `added latency per passthrough request, concurrency ${concurrency}, ${workers} worker(s) (median dsd − direct)`,
        `${(median(via) - median(direct)).toFixed(2)} ms`,
        `${via.length} requests each`,
      ]),
    );
  }
}

// Memory at 100 and 1000 concurrent streams (each kept open ~3 s by a slow target).
target.latency.perTokenMs = 50;
for (const streams of [100, 1000]) {
  const dsd = await startDsd({ DSD_WINDOW: 'auto', DSD_WORKERS: '1' });
  try {
    const rssIdle = await metricValue(dsd.url, 'dsd_process_resident_memory_bytes');
    let peak = rssIdle;
    const sampling = setInterval(() => {
      metricValue(dsd.url, 'dsd_process_resident_memory_bytes').then(
        (v) => (peak = Math.max(peak, v)),
        () => undefined,
      );
    }, 200);
    const results = await load(dsd.url, streams, streams, { maxTokens: 60 });
    clearInterval(sampling);
    const ok = results.filter((r) => r.ok).length;
    lines.push(
      markdownRow([
        `RSS with ${streams} concurrent streams (peak; idle ${(rssIdle / 1e6).toFixed(0)} MB)`,
        `${(peak / 1e6).toFixed(0)} MB`,
        `${ok}/${streams} complete`,
      ]),
    );
  } finally {
    dsd.child.kill('SIGTERM');
  }
}
target.latency.perTokenMs = 2;

// Throughput as concurrency grows (target 2 ms per token, speculation adaptive).
const scaling = await startDsd({ DSD_WINDOW: 'auto' });
try {
  for (const concurrency of [1, 10, 100]) {
    const started = performance.now();
    const results = await load(scaling.url, concurrency, concurrency * 4);
    const tokens = results.reduce((s, r) => s + r.outputTokens, 0);
    lines.push(
      markdownRow([
        `throughput at concurrency ${concurrency} (emulated target 2 ms/token)`,
        `${(tokens / ((performance.now() - started) / 1000)).toFixed(0)} tokens/s`,
        `${results.filter((r) => r.ok).length}/${results.length} ok`,
      ]),
    );
  }
} finally {
  scaling.child.kill('SIGTERM');
}
await Promise.all([target.close(), draft.close()]);
console.log('\n| figure | value | note |\n|---|---|---|');
for (const l of lines) console.log(l);
