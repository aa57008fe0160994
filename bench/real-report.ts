/**
 * The reproducible performance report behind the README's figures: real llama-servers (the heavy
 * target stories260K-ff32k-f32 and the q4_0 draft from ../shared/models), three setups side by
 * side, interleaved wave by wave: dsd (draft local, target across the link), the target alone
 * (a direct client across the same link), and llama-server's own speculative mode on the same pair
 * (the whole server across the link). Concurrency 1, 4 and 16; RTT 0 and 25 ms (delay proxy);
 * greedy and temperature 0.8. Writes docs/benchmarks.md. Before each setup's wave, the wave's prompts
 * go to that setup's target with max_tokens 1, so every setup finds them in the slots (TTFT is then the
 * first decode step, not the prefill, for all setups alike).
 *
 * `--fixed 2,4` adds dsd with each fixed window beside its default adaptive one.
 *
 * `--pin`: the target side on core 0, the edge (dsd, clients, draft) on core 1.
 *
 *   npm run bench:real [-- --rtts 0,25 --concurrency 1,4,16 --tokens 64 --fixed 2,4 --pin]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import { type LlamaProcess, locateLlamaServer, pinSelf, startLlamaServer } from '../src/bench/llama-process.js';
import { type LoadOptions, loadPrompts, type RequestResult, runLoad } from '../src/bench/load-generator.js';
import { markdownRow } from '../src/bench/markdown.js';
import { type BenchSummary, summarize } from '../src/bench/report.js';
import { startInProcessDsd } from './in-process-dsd.js';

const { values } = parseArgs({
  options: {
    rtts: { type: 'string', default: '0,25' },
    concurrency: { type: 'string', default: '1,4,16' },
    temperatures: { type: 'string', default: '0,0.8' },
    tokens: { type: 'string', default: '64' },
    waves: { type: 'string', default: '2' },
    fixed: { type: 'string', default: '' },
    pin: { type: 'boolean', default: false },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
// --pin: the target side (target, llama-server's own speculation) on core 0, the edge (this process:
// dsd and the clients; the draft) on core 1, as on two machines.
const TARGET_CPUS = values.pin ? '0' : undefined;
const EDGE_CPUS = values.pin ? '1' : undefined;
if (EDGE_CPUS !== undefined) pinSelf(EDGE_CPUS);
const concurrencies = values.concurrency.split(',').map(Number);
const maxSlots = Math.max(...concurrencies);
const model = (f: string) => resolve(values.models, f);
const prompts = loadPrompts().filter((p) => /story|Once|One day|saw|sad/.test(p.messages[0]?.content ?? ''));
const bin = await locateLlamaServer((line) => console.error(line));
const started = Date.now();

const servers: LlamaProcess[] = [];
const target = await startLlamaServer({
  bin,
  modelPath: model('stories260K-ff32k-f32.gguf'),
  alias: 'target',
  slots: Math.max(maxSlots * 2, 9),
  threads: 1,
  cpus: TARGET_CPUS,
});
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'draft',
  slots: maxSlots,
  threads: 1,
  cpus: EDGE_CPUS,
});
const ownSpec = await startLlamaServer({
  bin,
  modelPath: model('stories260K-ff32k-f32.gguf'),
  alias: 'target',
  slots: maxSlots,
  threads: 1,
  cpus: TARGET_CPUS,
  extraArgs: [
    '--spec-type',
    'draft-simple',
    '--spec-draft-model',
    model('stories260K-q4_0.gguf'),
    '--spec-draft-n-max',
    '8',
    '--threads-draft',
    '1',
  ],
});
servers.push(target, draft, ownSpec);
const closers: (() => Promise<void>)[] = [];

async function dsdApp(targetUrl: string, env: Record<string, string> = {}): Promise<string> {
  const dsd = await startInProcessDsd(
    {
      target: { urls: [targetUrl], kind: 'llamacpp' },
      draft: { urls: [draft.url], kind: 'llamacpp' },
    },
    env,
  );
  closers.push(() => dsd.close());
  return dsd.url;
}

/** One wave of `concurrency` streaming requests against `url`. */
function loadOf(url: string, concurrency: number, w: number, temperature: number): LoadOptions {
  return {
    url,
    model: 'target',
    concurrency,
    requests: concurrency,
    prompts,
    promptOffset: w * concurrency,
    maxTokens: Number(values.tokens),
    temperature,
    stream: true,
    timeoutMs: 300_000,
  };
}

const sections: string[] = [];
for (const rtt of values.rtts.split(',').map(Number)) {
  const proxyFor = async (s: LlamaProcess) => {
    const p = new DelayProxy({
      targetHost: '127.0.0.1',
      targetPort: Number(new URL(s.url).port),
      oneWayDelayMs: rtt / 2,
    });
    await p.listen();
    closers.push(() => p.close());
    return p.url;
  };
  const targetLink = await proxyFor(target);
  const ownSpecLink = await proxyFor(ownSpec);
  const setups: Record<string, string> = {
    dsd: await dsdApp(targetLink),
    'target alone': targetLink,
    'llama-server speculative': ownSpecLink,
  };
  // The server whose slots a setup's prompts are put in before its waves (the target, but for this one).
  const targetOf: Record<string, string> = { 'llama-server speculative': ownSpecLink };
  for (const k of values.fixed.split(',').filter((v) => v !== ''))
    setups[`dsd k=${k}`] = await dsdApp(targetLink, { DSD_WINDOW: k });
  for (const temperature of values.temperatures.split(',').map(Number)) {
    const summaries: BenchSummary[] = [];
    for (const concurrency of concurrencies) {
      const acc: Record<string, { ms: number; results: RequestResult[] }> = {};
      for (const url of Object.values(setups))
        await runLoad({ ...loadOf(url, concurrency, 0, temperature), maxTokens: 16 }); // warm-up
      for (let w = 0; w < Number(values.waves); w++) {
        for (const [name, url] of Object.entries(setups)) {
          // Every setup finds the wave's prompts in its target's slots: before, whichever setup ran
          // first paid the prefill and the next reused it (16 streams: dsd's TTFT 1.3 s, alone's 0.14 s).
          await runLoad({ ...loadOf(targetOf[name] ?? targetLink, concurrency, w, temperature), maxTokens: 1 });
          const t0 = performance.now();
          const results = await runLoad(loadOf(url, concurrency, w, temperature));
          const a = (acc[name] ??= { ms: 0, results: [] });
          a.ms += performance.now() - t0;
          a.results.push(...results);
        }
      }
      for (const [name, a] of Object.entries(acc))
        summaries.push(summarize(name, setups[name] as string, concurrency, a.results, a.ms));
      process.stderr.write(
        `RTT ${rtt} ms, temperature ${temperature}, concurrency ${concurrency}: done ` +
          `(${Math.round((Date.now() - started) / 1000)} s)\n`,
      );
    }
    const rows = summaries.map((s) => {
      const base = summaries.find((b) => b.label === 'target alone' && b.concurrency === s.concurrency) as BenchSummary;
      const msPerToken = (x: BenchSummary) => (x.tpotMs.p50 > 0 ? x.tpotMs.p50 : Number.NaN);
      return markdownRow([
        s.concurrency,
        s.label,
        s.outputTokensPerSecond.toFixed(1),
        `${(s.outputTokensPerSecond / base.outputTokensPerSecond).toFixed(2)}×`,
        s.ttftMs.p50.toFixed(0),
        msPerToken(s).toFixed(2),
        `${s.e2eMs.p50.toFixed(0)} / ${s.e2eMs.p95.toFixed(0)}`,
        `${s.acceptanceRate === undefined ? '—' : `${(100 * s.acceptanceRate).toFixed(1)} %`}`,
        s.errors,
      ]);
    });
    sections.push(
      `### RTT ${rtt} ms, temperature ${temperature}\n\n| concurrency | setup | tokens/s | vs target alone | ` +
        `TTFT p50 ms | ms/token p50 | e2e p50 / p95 ms | acceptance | errors ` +
        `|\n|---|---|---|---|---|---|---|---|---|\n${rows.join('\n')}`,
    );
  }
}
const doc =
  `# Benchmarks\n\nGenerated by \`npm run bench:real\` on ${new Date().toISOString().slice(0, 10)} ` +
  `(${Math.round((Date.now() - started) / 1000)} s). Heavy target \`stories260K-ff32k-f32.gguf\` (1 thread) ` +
  `and q4_0 draft (1 thread) on a 2-core machine; ${values.tokens} tokens per request, streaming, ` +
  `${values.waves} waves per setup and level, setups interleaved wave by wave. dsd runs with its defaults ` +
  "(adaptive window, draft-ahead); the target and llama-server's own speculative server sit behind the delay proxy; " +
  `the draft is local to dsd${values.pin ? '; pinned: target side on core 0, edge on core 1' : ''}.\n\n` +
  `${sections.join('\n\n')}\n`;
mkdirSync(resolve(values.out, '..'), { recursive: true });
writeFileSync(values.out, doc);
console.log(doc);
for (const close of closers.reverse()) await close();
await Promise.all(servers.map((s) => s.stop()));
