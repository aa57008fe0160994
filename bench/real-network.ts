/**
 * Real llama-servers across an emulated network: the heavy target (stories260K-ff32k-f32) behind
 * the delay proxy at several RTTs, the q4_0 draft local. Side by side in one run, interleaved:
 * the target alone over the same link (a direct client, streaming), dsd adaptive, dsd fixed
 * k = 3 and k = 8 (defaults: DSD_DRAFT_AHEAD_DEPTH=auto, which is 0 for a llama.cpp target), and
 * adaptive and k = 3 with early verification forced on (DSD_DRAFT_AHEAD_DEPTH=2).
 * Milliseconds per generated token (greedy, wall time / tokens).
 *
 * `--target small`: the small f32 target instead (about 0.3 ms a token, as fast as the draft), where
 * no speculation pays and dsd must cost no more than relaying the target's own stream.
 *
 * `--kv-unified`: the target's slots share one KV buffer (docs/speculation.md: rounds collapse there).
 *
 *   npm run bench:real-network [-- --rtts 0,10,25 --tokens 128 --repeats 1 --target small --kv-unified]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import { locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import type { DsdOptions } from '../src/config/types.js';
import { timedCompletion } from './emulated-pair.js';
import { startInProcessDsd } from './in-process-dsd.js';

const { values } = parseArgs({
  options: {
    rtts: { type: 'string', default: '0,10,25' },
    tokens: { type: 'string', default: '128' },
    repeats: { type: 'string', default: '1' },
    'target-threads': { type: 'string', default: '1' },
    target: { type: 'string', default: 'heavy' },
    // The target llama-server's slots in one KV buffer: with a stream per slot, llama.cpp passes over
    // the weights once per run of slots with equal tokens, so a round's k+1 scored prompts split.
    'kv-unified': { type: 'boolean', default: false },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
const TOKENS = Number(values.tokens);
const PROMPTS = [
  'Once upon a time',
  'One day, a little girl named Lily',
  'Tom and his dog went to the park.',
  'The sun was shining and the birds were singing.',
  'Ben found a shiny rock under the tree.',
];
const model = (f: string) => resolve(values.models, f);
const TARGET_MODELS: Record<string, string> = { heavy: 'stories260K-ff32k-f32.gguf', small: 'stories260K-f32.gguf' };
const targetModel = TARGET_MODELS[values.target];
if (targetModel === undefined) throw new Error(`--target must be heavy or small, not ${values.target}`);

const bin = await locateLlamaServer((line) => console.error(line));
const target = await startLlamaServer({
  bin,
  modelPath: model(targetModel),
  alias: 'target',
  slots: 9,
  threads: Number(values['target-threads']),
  ...(values['kv-unified'] ? { extraArgs: ['--kv-unified'] } : {}),
});
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'draft',
  slots: 2,
  threads: 1,
});
const closers: (() => Promise<void>)[] = [() => target.stop(), () => draft.stop()];

async function dsdFor(targetUrl: string, speculation: DsdOptions['speculation']): Promise<string> {
  const dsd = await startInProcessDsd({
    target: { urls: [targetUrl], kind: 'llamacpp' },
    draft: { urls: [draft.url], kind: 'llamacpp' },
    speculation: { windowMax: 8, ...speculation },
  });
  closers.push(() => dsd.close());
  return dsd.url;
}

const rows: string[] = [];
for (const rtt of values.rtts.split(',').map(Number)) {
  const proxy = new DelayProxy({
    targetHost: '127.0.0.1',
    targetPort: Number(new URL(target.url).port),
    oneWayDelayMs: rtt / 2,
  });
  await proxy.listen();
  closers.push(() => proxy.close());
  const configs: Record<string, string> = {
    'target alone (direct client)': proxy.url,
    'dsd adaptive': await dsdFor(proxy.url, { window: 'auto' }),
    'dsd adaptive, early verification forced on (depth 2)': await dsdFor(proxy.url, { window: 'auto', aheadDepth: 2 }),
    'dsd k=3': await dsdFor(proxy.url, { window: 3 }),
    'dsd k=3, early verification forced on (depth 2)': await dsdFor(proxy.url, { window: 3, aheadDepth: 2 }),
    'dsd k=8': await dsdFor(proxy.url, { window: 8 }),
  };
  for (const url of Object.values(configs)) await timedCompletion(url, PROMPTS[0] as string, 16); // warm-up
  const totals: Record<string, { ms: number; tokens: number }> = {};
  for (let r = 0; r < Number(values.repeats); r++) {
    for (const prompt of PROMPTS) {
      for (const [name, url] of Object.entries(configs)) {
        const t = await timedCompletion(url, prompt, TOKENS);
        const acc = (totals[name] ??= { ms: 0, tokens: 0 });
        acc.ms += t.ms;
        acc.tokens += t.tokens;
      }
    }
  }
  const base = totals['target alone (direct client)'] as { ms: number; tokens: number };
  for (const [name, t] of Object.entries(totals)) {
    const msPerToken = t.ms / t.tokens;
    rows.push(`| ${rtt} | ${name} | ${msPerToken.toFixed(2)} | ${(base.ms / base.tokens / msPerToken).toFixed(2)}× |`);
  }
  process.stderr.write(`RTT ${rtt} ms done\n`);
}
console.log(
  `\n${values.target} target (${values['target-threads']} thread) behind the delay proxy + local q4_0 draft, greedy, ` +
    `${TOKENS} tokens × ${PROMPTS.length} prompts × ${values.repeats}\n`,
);
console.log('| RTT ms | setup | ms / token | vs target alone |');
console.log('|---|---|---|---|');
for (const row of rows) console.log(row);
for (const close of closers.reverse()) await close();
