/**
 * One evaluation of P positions on the heavy target (1 thread), with the target's token at every
 * position, through the verifier's native engine, against llama-server's own `prompt_ms` for the
 * same P positions after the same cached context; side by side in one run, median of --reps.
 * Both run on core 0 (this process is pinned there while it measures the engine; the server is
 * pinned there too), as the target side of a two-machine setup.
 *
 *   npm run bench:native-eval [-- --positions 1,5,9,17 --reps 25 --variant cpu]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { locateLlamaServer, pinSelf, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { buildNativeEngine } from '../src/bench/verifier-process.js';
import { openNativeEngine } from '../src/engine/native/native-engine.js';
import { loadNativeApi } from '../src/engine/native/native-library.js';
import type { PositionSampling } from '../src/engine/types.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';

const { values } = parseArgs({
  options: {
    positions: { type: 'string', default: '1,5,9,17' },
    reps: { type: 'string', default: '25' },
    variant: { type: 'string', default: 'cpu' },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
const HEAVY = resolve(values.models, 'stories260K-ff32k-f32.gguf');
const REPS = Number(values.reps);
const log = (line: string) => console.error(line);
const bin = await locateLlamaServer(log);
const dir = await buildNativeEngine([values.variant], log);
pinSelf('0');
const server = await startLlamaServer({ bin, modelPath: HEAVY, alias: 'heavy', slots: 1, threads: 1, cpus: '0' });
const api = loadNativeApi(dir);
api.backendInit(api.manifest.backendDir, 0);
const engine = openNativeEngine(api, { modelPath: HEAVY, threads: 1, sequences: 1, gpuLayers: 0, backend: 'cpu' });
const GREEDY: PositionSampling = { sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 }, topN: 0 };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const context = await engine.tokenize(STORY_PROMPTS.slice(0, 3).join(' '), true);
const seq = await engine.acquire(context, AbortSignal.timeout(600_000));
await seq.evaluate(0, context, 1, GREEDY);
const filler = (p: number) => Array.from({ length: p }, (_, i) => 300 + ((i * 37) % 200));

/** llama-server: the context cached, then context + P tokens with n_predict 1: its prompt_ms is P positions. */
async function serverMs(p: number): Promise<number> {
  const body = (prompt: number[]) =>
    JSON.stringify({ prompt, n_predict: 1, temperature: 0, cache_prompt: true, samplers: ['top_k'], top_k: 1 });
  await fetch(`${server.url}/completion`, { method: 'POST', body: body(context) }).then((r) => r.json());
  const r = (await (
    await fetch(`${server.url}/completion`, { method: 'POST', body: body([...context, ...filler(p)]) })
  ).json()) as {
    timings: { prompt_ms: number; prompt_n: number };
  };
  if (r.timings.prompt_n !== p) throw new Error(`llama-server evaluated ${r.timings.prompt_n} positions, not ${p}`);
  return r.timings.prompt_ms;
}

/** The native engine: keep the context, evaluate P tokens, the target's token after the last `outputs`. */
async function nativeMs(p: number, outputs: number): Promise<number> {
  const started = performance.now();
  const scored = await seq.evaluate(context.length, filler(p), outputs, GREEDY);
  const ms = performance.now() - started;
  if (scored.length !== outputs) throw new Error('short evaluation');
  return ms;
}

console.log(
  `\nheavy target, 1 thread, core 0; context ${context.length} tokens; median of ${REPS}; engine ${api.variant}\n`,
);
// llama-server's prompt_ms computes the last layer's feed-forward for the one output row only
// (llama.cpp drops unused rows before it); a round needs a token at every position, so both are shown.
console.log(
  markdownRow([
    'positions',
    'llama-server prompt_ms (last position only)',
    'native, last position only',
    'ratio',
    'native, token at every position',
    'ratio',
  ]),
);
console.log(markdownRow(['---', '---', '---', '---', '---', '---']));
for (const p of values.positions.split(',').map(Number)) {
  const last: number[] = [];
  const every: number[] = [];
  const server: number[] = [];
  for (let i = 0; i < REPS; i++) {
    last.push(await nativeMs(p, 1));
    every.push(await nativeMs(p, p));
    server.push(await serverMs(p));
  }
  const [x, y, z] = [median(last), median(every), median(server)];
  const ratio = (a: number) => `${(a / z).toFixed(3)}×`;
  console.log(markdownRow([p, z.toFixed(2), x.toFixed(2), ratio(x), y.toFixed(2), ratio(y)]));
}
seq.release();
await engine.close();
await server.stop();
