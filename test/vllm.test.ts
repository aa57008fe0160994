import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshWordPrompt, STORY_PROMPTS } from './fixtures-prompts.js';
import { chiSquareTwoSample } from './helpers/chi-square.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import {
  compareWithReference,
  type GreedyReference,
  greedyReferenceVllm,
  tokenizeOnVllm,
} from './helpers/greedy-reference.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { startTestVllm, type VllmProcess, vllmSkipReason } from './helpers/vllm.js';

const skip = llamaSkipReason() ?? vllmSkipReason();
const MODEL = 'stories-f32';
const PROMPTS = STORY_PROMPTS.slice(0, 15);
const MAX_TOKENS = 96;
const N = 600;
const ALPHA = 0.001;

interface Usage {
  completion_tokens: number;
  dsd: { rounds: number; draft_tokens: number; accepted_tokens: number; fallback: string | null };
}

/** vLLM's prefix-cache counters from its Prometheus /metrics. */
async function prefixCache(url: string): Promise<{ hits: number; queries: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) =>
    Number(new RegExp(`^vllm:${name}_total\\{[^}]*\\} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { hits: read('prefix_cache_hits'), queries: read('prefix_cache_queries') };
}

/**
 * dsd against a real vLLM (the CPU build, serving the small f32 test model widened to 32-wide
 * heads by scripts/hf-model.sh) with a llama-server q4_0 draft. vLLM's f32 CPU kernels, like
 * llama.cpp's, give logits that differ in the last bits between batch shapes, so a difference is
 * accepted only where it starts at a near-tie (compareWithReference).
 */
describe.skipIf(skip !== undefined)(`a real vLLM as the target${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let vllm: VllmProcess;
  let draft: LlamaProcess;
  let dsd: TestDsd;
  let client: OpenAI;
  const expected: GreedyReference[] = [];

  beforeAll(async () => {
    [vllm, draft] = await Promise.all([
      startTestVllm({ servedName: MODEL, maxLogprobs: 20 }),
      startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 }),
    ]);
    for (const prompt of PROMPTS)
      expected.push(
        await greedyReferenceVllm(vllm.url, MODEL, await tokenizeOnVllm(vllm.url, MODEL, prompt), MAX_TOKENS),
      );
    dsd = await startTestDsd({
      target: { urls: [vllm.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 4 },
    });
    client = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  }, 300_000);
  afterAll(async () => {
    await dsd?.close();
    await Promise.all([vllm?.stop(), draft?.stop()]);
  });

  it('is detected as vLLM, shares the llama-server draft vocabulary, and serves its model name', async () => {
    const { info } = await dsd.router.dsd.upstreams.target(AbortSignal.timeout(10_000));
    expect(info.kind).toBe('vllm');
    expect(info.contextTokens).toBe(512);
    expect(info.bosId).toBe(1);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    const r = await client.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 16,
      temperature: 0,
    });
    // The draft is only used when the vocabulary check passed; otherwise dsd runs target-only.
    expect((r.usage as unknown as Usage).dsd.rounds).toBeGreaterThan(0);
    expect((r.usage as unknown as Usage).dsd.fallback).toBeNull();
  });

  it(`greedy: ${PROMPTS.length} prompts × ${MAX_TOKENS} tokens equal vLLM alone, using its prefix cache`, async () => {
    const before = await prefixCache(vllm.url);
    let drafted = 0;
    let accepted = 0;
    let rounds = 0;
    let ties = 0;
    for (const [i, prompt] of PROMPTS.entries()) {
      const r = await client.completions.create({ model: MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0 });
      const verdict = compareWithReference(r.choices[0]?.text ?? '', expected[i]!);
      expect(['identical', 'near-tie'], `prompt ${i}: ${verdict}`).toContain(verdict);
      if (verdict === 'near-tie') ties += 1;
      const usage = r.usage as unknown as Usage;
      expect(usage.completion_tokens).toBe(MAX_TOKENS);
      drafted += usage.dsd.draft_tokens;
      accepted += usage.dsd.accepted_tokens;
      rounds += usage.dsd.rounds;
    }
    const after = await prefixCache(vllm.url);
    const hitRate = (after.hits - before.hits) / (after.queries - before.queries);
    console.log(
      `vLLM target: acceptance ${accepted}/${drafted} = ${((accepted / drafted) * 100).toFixed(1)} %, mean ` +
        `acceptance length ${(1 + accepted / rounds).toFixed(2)} over ${rounds} rounds; ` +
        `${PROMPTS.length - ties} identical, ${ties} after a near-tie; vLLM prefix cache hit rate ` +
        `${(hitRate * 100).toFixed(1)} % (${after.hits - before.hits}/${after.queries - before.queries} tokens)`,
    );
    expect(ties).toBeLessThanOrEqual(PROMPTS.length / 4);
    expect(accepted / drafted).toBeGreaterThan(0.4);
    // Each round's k+1 prompts share the committed context; block size 32 counts whole blocks.
    expect(hitRate).toBeGreaterThan(0.5);
  });

  it('greedy streamed: the same text', async () => {
    for (const [i, prompt] of PROMPTS.entries()) {
      let text = '';
      const stream = await client.completions.create({
        model: MODEL,
        prompt,
        max_tokens: MAX_TOKENS,
        temperature: 0,
        stream: true,
      });
      for await (const c of stream) text += c.choices[0]?.text ?? '';
      const verdict = compareWithReference(text, expected[i]!);
      expect(['identical', 'near-tie'], `prompt ${i}: ${verdict}`).toContain(verdict);
    }
  });

  it('chat, streamed and not: vLLM templates the messages and dsd matches vLLM alone', async () => {
    const conversations = [
      [{ role: 'user' as const, content: 'Once upon a time' }],
      [{ role: 'user' as const, content: 'Tell me about a dog.' }],
      [
        { role: 'system' as const, content: 'You tell short stories.' },
        { role: 'user' as const, content: 'The little boat sailed on the lake.' },
      ],
      [
        { role: 'user' as const, content: 'Hi' },
        { role: 'assistant' as const, content: 'Once upon a time there was a cat.' },
        { role: 'user' as const, content: 'What did the cat do?' },
      ],
    ];
    let rounds = 0;
    for (const [i, messages] of conversations.entries()) {
      const ids = (await postJson(`${vllm.url}/tokenize`, { model: MODEL, messages, add_generation_prompt: true })).body
        .tokens as number[];
      const ref = await greedyReferenceVllm(vllm.url, MODEL, ids, 48);
      let text: string;
      if (i % 2 === 0) {
        const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 48, temperature: 0 });
        text = r.choices[0]?.message.content ?? '';
        rounds += (r.usage as unknown as Usage).dsd.rounds;
      } else {
        text = '';
        const stream = await client.chat.completions.create({
          model: MODEL,
          messages,
          max_tokens: 48,
          temperature: 0,
          stream: true,
        });
        for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      }
      const verdict = compareWithReference(text, ref);
      expect(['identical', 'near-tie'], `conversation ${i}: ${verdict}`).toContain(verdict);
    }
    expect(rounds).toBeGreaterThan(0);
  });

  it('temperature 0.8: dsd samples from vLLM’s distribution (two-sample χ², p > 0.001; control rejected)', async () => {
    const local = await startTestDsd({
      target: { urls: [vllm.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 1 },
    });
    const direct = async (temperature: number) => {
      const texts: string[] = [];
      for (let i = 0; i < N; i++) {
        const r = await postJson(`${vllm.url}/v1/completions`, {
          model: MODEL,
          prompt: 'The dog was',
          max_tokens: 2,
          temperature,
          top_p: 1,
          top_k: -1,
          min_p: 0,
        });
        texts.push(r.body.choices[0].text);
      }
      return texts;
    };
    try {
      const texts: string[] = [];
      let accepted = 0;
      let drafted = 0;
      for (let i = 0; i < N; i++) {
        const r = await postJson(`${local.baseUrl}/v1/completions`, {
          model: MODEL,
          prompt: 'The dog was',
          max_tokens: 2,
          temperature: 0.8,
        });
        texts.push(r.body.choices[0].text);
        accepted += r.body.usage.dsd.accepted_tokens;
        drafted += r.body.usage.dsd.draft_tokens;
      }
      const [reference, control] = [await direct(0.8), await direct(0.5)];
      const test = chiSquareTwoSample(texts, reference);
      const power = chiSquareTwoSample(control, reference);
      console.log(
        `vLLM T=0.8: χ²=${test.statistic.toFixed(1)} df=${test.degreesOfFreedom} p=${test.pValue.toFixed(3)}; ` +
          `acceptance ${accepted}/${drafted}; control (T=0.5 vs 0.8) p=${power.pValue.toExponential(1)}`,
      );
      expect(drafted).toBe(N);
      expect(accepted).toBeGreaterThan(N * 0.2);
      expect(test.pValue).toBeGreaterThan(ALPHA);
      expect(power.pValue).toBeLessThan(ALPHA);
    } finally {
      await local.close();
    }
  }, 300_000);

  it('tenants do not share vLLM’s prefix cache (cache_salt per key); with DSD_CACHE_SCOPE=global they do', async () => {
    const keys = ['key-tenant-a', 'key-tenant-b'];
    // A fixed window and no draft-ahead: each request's own rounds (and the blocks they hit) then
    // depend on its prompt alone, not on what the planner learnt from the request before it.
    const options = {
      target: { urls: [vllm.url] },
      draft: { urls: [draft.url] },
      apiKeys: keys,
      speculation: { window: 4, draftAhead: false },
    };
    const scoped = await startTestDsd(options);
    const global = await startTestDsd(options, { DSD_CACHE_SCOPE: 'global' });
    let fresh = 0;
    // A prompt nobody sent before (about 420 tokens: thirteen 32-token blocks).
    const freshPrompt = () => freshWordPrompt(++fresh, 180);
    /** vLLM prefix-cache hits caused by one request through dsd as `key`. */
    const hitsOf = async (d: TestDsd, key: string, prompt: string, speculative: boolean) => {
      const before = await prefixCache(vllm.url);
      const r = await postJson(
        `${d.baseUrl}/v1/completions`,
        { model: MODEL, prompt, max_tokens: 8, temperature: 0, dsd: { speculative } },
        { authorization: `Bearer ${key}` },
      );
      expect(r.status).toBe(200);
      return (await prefixCache(vllm.url)).hits - before.hits;
    };
    try {
      const rows: string[] = [];
      // A speculative request hits its own earlier rounds' blocks, so "not shared" means: tenant B
      // on A's prompt gets what A got the first time (fresh), not what A gets the second time.
      for (const speculative of [false, true]) {
        const p = freshPrompt();
        const first = await hitsOf(scoped, keys[0]!, p, speculative);
        const again = await hitsOf(scoped, keys[0]!, p, speculative);
        const other = await hitsOf(scoped, keys[1]!, p, speculative);
        const q = freshPrompt();
        const firstGlobal = await hitsOf(global, keys[0]!, q, speculative);
        const otherGlobal = await hitsOf(global, keys[1]!, q, speculative);
        rows.push(
          `${speculative ? 'speculative' : 'passthrough'}: A first ${first}, A again ${again}, B ${other}; ` +
            `global scope: A first ${firstGlobal}, B ${otherGlobal}`,
        );
        expect(again - first).toBeGreaterThanOrEqual(256);
        expect(Math.abs(other - first)).toBeLessThanOrEqual(speculative ? 64 : 0);
        expect(otherGlobal - firstGlobal).toBeGreaterThanOrEqual(256);
      }
      console.log(`vLLM prefix-cache hits (tokens) for a ~420-token prompt tenant A just sent: ${rows.join('; ')}`);
    } finally {
      await Promise.all([scoped.close(), global.close()]);
    }
  });

  it('vLLM’s errors reach the client as OpenAI errors: context overflow, too many logprobs, bad model', async () => {
    const long = Array.from({ length: 500 }, () => 'dog').join(' ');
    const overflow = await postJson(`${dsd.baseUrl}/v1/completions`, { model: MODEL, prompt: long, max_tokens: 200 });
    expect(overflow.status).toBe(400);
    expect(overflow.body.error.message).toMatch(/context/i);
    expect(overflow.body.error.type).toBe('invalid_request_error');

    // vLLM started with --max-logprobs 5: dsd's own cap (20) lets 8 through, and vLLM refuses.
    const strict = await startTestVllm({ servedName: MODEL, maxLogprobs: 5 });
    const viaStrict = await startTestDsd({ target: { urls: [strict.url] } });
    const wrongName = await startTestDsd({ target: { urls: [vllm.url], model: 'no-such-model' } });
    try {
      const tooMany = await postJson(`${viaStrict.baseUrl}/v1/completions`, {
        model: MODEL,
        prompt: 'Once upon a time',
        max_tokens: 2,
        logprobs: 8,
      });
      expect(tooMany.status).toBe(400);
      expect(tooMany.body.error.message).toMatch(/logprobs/);
      const bad = await postJson(`${wrongName.baseUrl}/v1/completions`, { model: 'no-such-model', prompt: 'Once' });
      expect(bad.status).toBeGreaterThanOrEqual(500);
      expect(bad.body.error.message).toMatch(/no-such-model/);
    } finally {
      await Promise.all([viaStrict.close(), wrongName.close()]);
      await strict.stop();
    }
  }, 300_000);
});
