/**
 * dsd's peak RSS and CPU at 1000 concurrent streams under different V8 heap settings, each in its
 * own dsd process (dist/cli.js, one worker) in front of emulated backends at 50 ms per token, 60
 * tokens per stream: what a heap cap (NODE_OPTIONS) buys, side by side in one run. Then what each open
 * stream keeps alive: the heap after a full GC with every stream open, against the same idle
 * (bench/live-heap-probe.mjs, preloaded with --expose-gc).
 *
 *   npm run build && npm run bench:heap-cap [-- --flags "none|--max-old-space-size=160|--optimize-for-size"]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { metricValue, startDsdProcess } from '../src/bench/dsd-process.js';
import { runLoad } from '../src/bench/load-generator.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';

const { values } = parseArgs({
  options: {
    flags: { type: 'string', default: 'none|--max-old-space-size=160|--max-old-space-size=128|--optimize-for-size' },
    streams: { type: 'string', default: '1000' },
  },
});
const models = demoModels();
const target = new LlamaEmulator({ model: models.target, alias: 'target', slots: 64 });
const draft = new LlamaEmulator({ model: models.draft, alias: 'draft', slots: 64 });
await Promise.all([target.listen(), draft.listen()]);
target.latency.perTokenMs = 50;
const streams = Number(values.streams);
const DSD_ENV = {
  DSD_TARGET_URL: target.url,
  DSD_DRAFT_URL: draft.url,
  DSD_WORKERS: '1',
  DSD_MAX_CONCURRENCY: '5000',
  DSD_MAX_QUEUE: '5000',
};
const LOAD = {
  model: 'target',
  concurrency: streams,
  requests: streams,
  prompts: [{ messages: [{ role: 'user' as const, content: 'Once upon a time' }] }],
  maxTokens: 60,
  temperature: 0,
  stream: true,
  timeoutMs: 60_000,
};

console.log(`\n| node flags for dsd | peak RSS | dsd CPU | complete |\n|---|---|---|---|`);
for (const flags of values.flags.split('|')) {
  const nodeFlags = flags === 'none' ? [] : flags.split(' ');
  const { url, child } = await startDsdProcess(DSD_ENV, nodeFlags);
  try {
    let peak = await metricValue(url, 'dsd_process_resident_memory_bytes');
    const sampling = setInterval(() => {
      metricValue(url, 'dsd_process_resident_memory_bytes').then(
        (v) => (peak = Math.max(peak, v)),
        () => undefined,
      );
    }, 200);
    const cpu0 = await metricValue(url, 'dsd_process_cpu_seconds_total');
    const results = await runLoad({ ...LOAD, url });
    clearInterval(sampling);
    const cpu = (await metricValue(url, 'dsd_process_cpu_seconds_total')) - cpu0;
    const ok = results.filter((r) => r.ok).length;
    console.log(`| ${flags} | ${(peak / 1e6).toFixed(0)} MB | ${cpu.toFixed(1)} s | ${ok}/${streams} |`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
  }
}
await liveHeapPerStream();
await Promise.all([target.close(), draft.close()]);

/** Heap that survives a full GC: idle, then three times while all the streams are open. */
async function liveHeapPerStream(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dsd-heap-'));
  const out = join(dir, 'probe.jsonl');
  const probe = fileURLToPath(new URL('./live-heap-probe.mjs', import.meta.url));
  const { url, child } = await startDsdProcess({ ...DSD_ENV, HEAP_PROBE_OUT: out }, ['--expose-gc', '--import', probe]);
  const samples = () =>
    readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { heapUsed: number });
  try {
    child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 300));
    const open: number[] = [];
    const probes = [2000, 3000, 4000].map((ms) =>
      setTimeout(async () => {
        open.push(await metricValue(url, 'dsd_http_in_flight_requests'));
        child.kill('SIGUSR2');
      }, ms),
    );
    await runLoad({ ...LOAD, url });
    for (const p of probes) clearTimeout(p);
    const [idle, ...loaded] = samples().map((s) => s.heapUsed);
    const live = Math.max(...loaded);
    const openStreams = Math.min(...open);
    console.log(
      `\nlive heap after a full GC: ${((idle ?? 0) / 1e6).toFixed(1)} MB idle, ${(live / 1e6).toFixed(1)} MB ` +
        `with ${openStreams} streams open: ${((live - (idle ?? 0)) / openStreams / 1e3).toFixed(1)} kB per stream`,
    );
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
