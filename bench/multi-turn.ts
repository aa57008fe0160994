/**
 * Network economy on a multi-turn chat workload (conversations concurrent, turns sequential),
 * real llama-servers (f32 target, q4_0 draft):
 * prompt tokens the servers recomputed per generated token, and bytes per generated token on each
 * link, with dsd's prefix reuse (prompt cache, pinned draft slots, target slots shared among the
 * requests in flight) off ("before") and on ("after"), in one run. Each setting gets its own server
 * pair so KV caches do not interfere.
 *
 *   npm run bench:multi-turn [-- --conversations 6 --turns 5]
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type LlamaProcess, locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { loadConfig } from '../src/config/load-config.js';
import type { DsdOptions } from '../src/config/types.js';
import { createLogger } from '../src/logger.js';
import { createApp } from '../src/server/http/app.js';

const { values } = parseArgs({
  options: {
    conversations: { type: 'string', default: '6' },
    turns: { type: 'string', default: '5' },
    tokens: { type: 'string', default: '48' },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  },
});
const bin = await locateLlamaServer((line) => console.error(line));
const model = (f: string) => resolve(values.models, f);
const FOLLOW_UPS = [
  'And then?',
  'What happened next?',
  'Tell me more.',
  'How did it end?',
  'Why?',
  'Who else was there?',
];

async function promptTokensProcessed(server: LlamaProcess): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^llamacpp:prompt_tokens_total (\d+)/m.exec(text)?.[1] ?? 0);
}

async function run(name: string, options: DsdOptions): Promise<Record<string, number | string>> {
  const target = await startLlamaServer({
    bin,
    modelPath: model('stories260K-f32.gguf'),
    alias: 'target',
    slots: 16,
    extraArgs: ['--metrics'],
  });
  const draft = await startLlamaServer({
    bin,
    modelPath: model('stories260K-q4_0.gguf'),
    alias: 'draft',
    slots: Number(values.conversations),
    extraArgs: ['--metrics'],
  });
  const { app, router } = createApp({
    config: loadConfig(
      {},
      { target: { urls: [target.url] }, draft: { urls: [draft.url] }, speculation: { window: 4 }, ...options },
    ),
    logger: createLogger('silent'),
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let generated = 0;
  try {
    // Conversations run concurrently (each one turn after another), so they compete for slots.
    await Promise.all(
      Array.from({ length: Number(values.conversations) }, async (_, c) => {
        const messages: { role: string; content: string }[] = [
          { role: 'system', content: `You tell children's stories. Story ${c}.` },
          { role: 'user', content: 'Once upon a time' },
        ];
        for (let t = 0; t < Number(values.turns); t++) {
          const res = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'target', messages, max_tokens: Number(values.tokens), temperature: 0 }),
          });
          const body = (await res.json()) as {
            choices: { message: { content: string } }[];
            usage: { completion_tokens: number };
          };
          generated += body.usage.completion_tokens;
          messages.push(
            { role: 'assistant', content: body.choices[0]!.message.content },
            { role: 'user', content: FOLLOW_UPS[t % FOLLOW_UPS.length] as string },
          );
        }
      }),
    );
    const links = router.dsd.upstreams.links();
    const bytes = (role: string) =>
      links.filter((l) => l.role === role).reduce((s, l) => s + l.bytesSent + l.bytesReceived, 0);
    const [targetTokens, draftTokens] = [await promptTokensProcessed(target), await promptTokensProcessed(draft)];
    const cache = router.dsd.promptCache?.counters;
    return {
      setting: name,
      generated,
      'target prompt tokens recomputed / generated token': (targetTokens / generated).toFixed(2),
      'draft prompt tokens recomputed / generated token': (draftTokens / generated).toFixed(2),
      'target link bytes / generated token': Math.round(bytes('target') / generated),
      'draft link bytes / generated token': Math.round(bytes('draft') / generated),
      'prompt cache (exact / prefix hits)': cache ? `${cache.exactHits} / ${cache.prefixHits}` : 'off',
    };
  } finally {
    server.closeAllConnections();
    server.close();
    await router.close();
    await Promise.all([target.stop(), draft.stop()]);
  }
}

const before = await run('before (no prompt cache, no draft slot pinning, no target slot sharing)', {
  promptCacheEntries: 0,
  draftSlotPinning: false,
  targetSlotSharing: false,
});
const after = await run('after (all three on, the defaults)', {});
const keys = Object.keys(before).filter((k) => k !== 'setting');
console.log(
  `\nmulti-turn chat: ${values.conversations} concurrent conversations × ${values.turns} turns × ` +
    `${values.tokens} tokens, greedy, f32 target (16 slots) + q4_0 draft (${values.conversations} slots), k = 4\n`,
);
console.log(`| figure | ${before.setting} | ${after.setting} |`);
console.log('|---|---|---|');
for (const k of keys) console.log(`| ${k} | ${before[k]} | ${after[k]} |`);
