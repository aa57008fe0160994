import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaCppServer } from '../src/backends/llamacpp/client.js';
import type { ChatMessage } from '../src/backends/types.js';
import { PromptCache } from '../src/cache/prompt-cache.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { buildPromptIds } from '../src/server/generation/prompt-builder.js';
import { postJson, startTestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';

const timeouts = { connectTimeoutMs: 2_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 };
const signal = () => AbortSignal.timeout(10_000);

/** A conversation growing turn by turn, with awkward boundaries (no space, digits, punctuation). */
const TURNS: ChatMessage[][] = [];
{
  const m: ChatMessage[] = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Once upon a time' },
  ];
  TURNS.push([...m]);
  const replies = [', there was a girl named Lily.', '42!', 'She said "hi" and ran home.'];
  const asks = ['What next?', 'and then', 'The end?'];
  for (let i = 0; i < replies.length; i++) {
    m.push({ role: 'assistant', content: replies[i] as string }, { role: 'user', content: asks[i] as string });
    TURNS.push([...m]);
  }
}

async function checkPrefixReuse(server: LlamaCppServer, model: string) {
  const cache = new PromptCache(16);
  for (const messages of TURNS) {
    const viaCache = await buildPromptIds({
      input: { kind: 'messages', messages },
      target: server,
      model,
      scope: '',
      cache,
      signal: signal(),
    });
    const full = await server.chatPromptIds(messages, signal());
    expect(viaCache).toEqual(full);
  }
  return cache.counters;
}

describe('prompt cache (emulated llama.cpp)', () => {
  let emu: LlamaEmulator;
  let server: LlamaCppServer;
  beforeAll(async () => {
    emu = new LlamaEmulator({ model: demoModels().target, alias: 'target' });
    await emu.listen();
    server = new LlamaCppServer({ baseUrl: emu.url, role: 'target', timeouts });
  });
  afterAll(async () => {
    await server.close();
    await emu.close();
  });

  it('a follow-up turn reuses the earlier turn ids, identical to a full tokenize', async () => {
    const counters = await checkPrefixReuse(server, 'target');
    expect(counters.prefixHits).toBe(TURNS.length - 1);
    expect(counters.misses).toBe(TURNS.length);
  });

  it('an exact input seen before costs no request; text prompts too', async () => {
    const cache = new PromptCache(16);
    const before = emu.stats.requests;
    const input = { kind: 'text' as const, text: 'Once upon a time' };
    const a = await buildPromptIds({ input, target: server, model: 'target', scope: 'A', cache, signal: signal() });
    const b = await buildPromptIds({ input, target: server, model: 'target', scope: 'A', cache, signal: signal() });
    expect(b).toEqual(a);
    expect(emu.stats.requests - before).toBe(1);
    expect(cache.counters.exactHits).toBe(1);
    // Another tenant's identical input is not a hit: its time tells nothing about tenant A.
    const other = await buildPromptIds({ input, target: server, model: 'target', scope: 'B', cache, signal: signal() });
    expect(other).toEqual(a);
    expect(emu.stats.requests - before).toBe(2);
    expect(cache.counters.exactHits).toBe(1);
  });

  it('is bounded: no growth past the configured entries', async () => {
    const cache = new PromptCache(5);
    for (let i = 0; i < 40; i++)
      await buildPromptIds({
        input: { kind: 'messages', messages: [{ role: 'user', content: `story ${i}` }] },
        target: server,
        model: 'target',
        scope: '',
        cache,
        signal: signal(),
      });
    expect(cache.size.exact).toBe(5);
    expect(cache.size.conversations).toBe(5);
  });

  it('through dsd: the second turn hits the prompt cache', async () => {
    const draft = new LlamaEmulator({ model: demoModels().draft, alias: 'draft' });
    await draft.listen();
    const dsd = await startTestDsd({
      target: { urls: [emu.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
    try {
      for (const messages of TURNS.slice(0, 2)) {
        const r = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
          model: 'target',
          messages,
          max_tokens: 8,
          temperature: 0,
        });
        expect(r.status).toBe(200);
      }
      expect(dsd.router.dsd.promptCache?.counters.prefixHits).toBe(1);
      const metrics = await (await fetch(`${dsd.baseUrl}/metrics`)).text();
      expect(metrics).toMatch(/^dsd_upstream_bytes\{role="target",upstream="[^"]+",direction="sent"\} [1-9]\d*/m);
    } finally {
      await dsd.close();
      await draft.close();
    }
  });
});

const skip = llamaSkipReason();
describe.skipIf(skip !== undefined)('prompt cache and KV reuse on real llama-servers', () => {
  let target: LlamaProcess;
  let draft: LlamaProcess;
  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'target', slots: 5 });
    draft = await startLlamaServer({
      model: 'stories260K-q4_0.gguf',
      alias: 'draft',
      slots: 2,
      extraArgs: ['--metrics'],
    });
  });
  afterAll(async () => {
    await Promise.all([target?.stop(), draft?.stop()]);
  });

  it('prefix reuse gives exactly the ids of a full tokenize on llama-server', async () => {
    const server = new LlamaCppServer({ baseUrl: target.url, role: 'target', timeouts });
    try {
      const counters = await checkPrefixReuse(server, 'target');
      expect(counters.prefixHits + counters.prefixRejected).toBe(TURNS.length - 1);
      expect(counters.prefixHits).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('the second turn of a conversation hits the target slots and the pinned draft slot KV caches', async () => {
    const dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
    try {
      const cachedTotal = async () =>
        Number(
          /^llamacpp:prompt_tokens_cached_total (\d+)/m.exec(await (await fetch(`${draft.url}/metrics`)).text())?.[1] ??
            Number.NaN,
        );
      const first = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
        model: 'target',
        messages: TURNS[0],
        max_tokens: 24,
        temperature: 0,
      });
      const reply = first.body.choices[0].message.content as string;
      const firstPromptTokens = first.body.usage.prompt_tokens as number;
      const cachedBefore = await cachedTotal();
      const second = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
        model: 'target',
        messages: [...TURNS[0]!, { role: 'assistant', content: reply }, { role: 'user', content: 'And then?' }],
        max_tokens: 24,
        temperature: 0,
      });
      expect(second.status).toBe(200);
      // Target: most verification prompt tokens came from the slots' KV caches.
      expect(second.body.usage.dsd.verify_prompt_recomputed_fraction).toBeLessThan(0.5);
      // Draft: its pinned slot still held turn 1, so turn 2's first proposal reused that prefix.
      expect((await cachedTotal()) - cachedBefore).toBeGreaterThanOrEqual(firstPromptTokens);
    } finally {
      await dsd.close();
    }
  });
});
