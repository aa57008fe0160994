import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import type { RunningVerifier } from '../src/verifier/main.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { postJson, readSse, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { spawnVerifier, startTestVerifier } from './helpers/verifier.js';

const skip = llamaSkipReason();
const MAX_TOKENS = 64;

/**
 * dsd through a real verifier (small f32 target in-process, q4_0 draft on llama-server): the same
 * engine decoding alone is the reference, so greedy output must be identical token for token.
 */
describe.skipIf(skip !== undefined)('the verifier: rounds in one sequence beside the target', () => {
  let verifier: RunningVerifier;
  let draft: LlamaProcess;
  let dsd: TestDsd;
  let model: string;
  const alone: string[] = [];
  const prompts = STORY_PROMPTS.slice(0, 6);
  /** A greedy completion from `base`, checked for 200. */
  const complete = async (base: string, prompt: string, extra: Record<string, unknown> = {}) => {
    const r = await postJson(`${base}/v1/completions`, {
      model,
      prompt,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      ...extra,
    });
    expect(r.status).toBe(200);
    return r.body;
  };

  beforeAll(async () => {
    verifier = await startTestVerifier('stories260K-f32.gguf', { sequences: 4 });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 4 });
    dsd = await startTestDsd({ target: { urls: [verifier.url] }, draft: { urls: [draft.url] } });
    model = ((await (await fetch(`${verifier.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    for (const prompt of prompts) alone.push((await complete(verifier.url, prompt)).choices[0].text);
  });
  afterAll(async () => {
    await dsd?.close();
    await draft?.stop();
    await verifier?.stop();
  });

  it('is detected as a verifier and reports the same model', async () => {
    const models = (await (await fetch(`${dsd.baseUrl}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]!.id).toBe(model);
    const target = await dsd.router.dsd.upstreams.target(AbortSignal.timeout(5_000));
    expect(target.info.kind).toBe('verifier');
  });

  it('greedy output through the verifier equals the verifier alone, with real rounds', async () => {
    let rounds = 0;
    let accepted = 0;
    for (const [i, prompt] of prompts.entries()) {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model,
        prompt,
        max_tokens: MAX_TOKENS,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      expect(r.body.choices[0].text).toBe(alone[i]);
      rounds += r.body.usage.dsd.rounds;
      accepted += r.body.usage.dsd.accepted_tokens;
    }
    expect(rounds).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(0);
  });

  it("the verifier's own stream (it never waits for proposals) gives the same text", async () => {
    // The heavy target: the small one decodes (0.3 ms a token natively) faster than any proposal
    // can come back from the draft, so its stream rightly never uses one.
    const heavy = await startTestVerifier('stories260K-ff32k-f32.gguf', { sequences: 1 });
    const streamed = await startTestDsd(
      { target: { urls: [heavy.url] }, draft: { urls: [draft.url] } },
      { DSD_VERIFIER_MODE: 'stream' },
    );
    try {
      let accepted = 0;
      for (const prompt of prompts.slice(0, 2)) {
        const named = { model: heavy.engine.info.modelName };
        const direct = await complete(heavy.url, prompt, named);
        const body = await complete(streamed.baseUrl, prompt, named);
        expect(body.choices[0].text).toBe(direct.choices[0].text);
        accepted += body.usage.dsd.accepted_tokens;
      }
      expect(accepted).toBeGreaterThan(0);
    } finally {
      await streamed.close();
      await heavy.stop();
    }
  }, 120_000);

  it('across a delayed link the stream takes trees and continues its chains; the text stays the target’s', async () => {
    const heavy = await startTestVerifier('stories260K-ff32k-f32.gguf', { sequences: 1 });
    const link = new DelayProxy({
      targetHost: '127.0.0.1',
      targetPort: Number(new URL(heavy.url).port),
      oneWayDelayMs: 10,
    });
    const far = await startTestDsd(
      { target: { urls: [await link.listen()] }, draft: { urls: [draft.url] } },
      { DSD_VERIFIER_MODE: 'stream', DSD_TREE_BRANCHES: '2' },
    );
    try {
      let branches = 0;
      let taken = 0;
      let accepted = 0;
      for (const prompt of prompts.slice(0, 3)) {
        const named = { model: heavy.engine.info.modelName };
        const direct = await complete(heavy.url, prompt, named);
        const body = await complete(far.baseUrl, prompt, named);
        expect(body.choices[0].text).toBe(direct.choices[0].text);
        branches += body.usage.dsd.tree_branches;
        taken += body.usage.dsd.tree_branch_steps;
        accepted += body.usage.dsd.accepted_tokens;
      }
      const { continuedDrafts, draftTokens } = heavy.link.stats;
      console.log(
        `trees across 10 ms: ${branches} branches sent, ${taken} steps took one, ${accepted} drafts accepted; ` +
          `${continuedDrafts} draft tokens not sent again (continued chains), ${draftTokens} verified`,
      );
      expect(branches).toBeGreaterThan(0);
      expect(accepted).toBeGreaterThan(0);
      expect(heavy.link.stats.branchSteps).toBe(taken);
      // The link agreed version 3, so a chain that repeats the one before it sends its new tokens only.
      expect(continuedDrafts).toBeGreaterThan(0);
    } finally {
      await far.close();
      await link.close();
      await heavy.stop();
    }
  }, 120_000);

  it('streams the same text, and concurrent sessions stay separate', async () => {
    const client = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    const texts = await Promise.all(
      prompts.slice(0, 4).map(async (prompt) => {
        const stream = await client.completions.create({
          model,
          prompt,
          max_tokens: MAX_TOKENS,
          temperature: 0,
          stream: true,
        });
        let text = '';
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
        return text;
      }),
    );
    expect(texts).toEqual(alone.slice(0, 4));
  });

  it('a conversation reuses its earlier turns from the KV of its sequence', async () => {
    const before = verifier.engine.load().reusedPrefixTokens;
    const first = [{ role: 'user', content: 'Tell me a story about a cat.' }];
    const a = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model,
      messages: first,
      max_tokens: 24,
      temperature: 0,
    });
    expect(a.status).toBe(200);
    const second = [
      ...first,
      { role: 'assistant', content: a.body.choices[0].message.content },
      { role: 'user', content: 'And then?' },
    ];
    const b = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model,
      messages: second,
      max_tokens: 24,
      temperature: 0,
    });
    expect(b.status).toBe(200);
    const direct = await postJson(`${verifier.url}/v1/chat/completions`, {
      model,
      messages: second,
      max_tokens: 24,
      temperature: 0,
    });
    expect(b.body.choices[0].message.content).toBe(direct.body.choices[0].message.content);
    // The second turn's prompt starts with the first turn's prompt and answer: at least those are reused.
    expect(verifier.engine.load().reusedPrefixTokens - before).toBeGreaterThan(20);
  });

  it('tenants: a prompt tenant A just sent is not reused for tenant B; A’s own repeat is', async () => {
    const keys = ['verifier-tenant-a', 'verifier-tenant-b'];
    const scoped = await startTestDsd({
      target: { urls: [verifier.url] },
      draft: { urls: [draft.url] },
      apiKeys: keys,
    });
    try {
      const prompt = 'The old man had a magic hat. One day he went to the market and saw a big dog.';
      const reuseOf = async (key: string) => {
        const before = verifier.engine.load().reusedPrefixTokens;
        const r = await postJson(
          `${scoped.baseUrl}/v1/completions`,
          { model, prompt, max_tokens: 8, temperature: 0 },
          { authorization: `Bearer ${key}` },
        );
        expect(r.status).toBe(200);
        return verifier.engine.load().reusedPrefixTokens - before;
      };
      await reuseOf(keys[0]!);
      const other = await reuseOf(keys[1]!);
      const again = await reuseOf(keys[0]!);
      expect(other).toBe(0);
      expect(again).toBeGreaterThan(15);
    } finally {
      await scoped.close();
    }
  });

  it('T > 0 through the verifier works and reports sample-and-match', async () => {
    const body = await complete(dsd.baseUrl, prompts[0]!, { max_tokens: 32, temperature: 0.8 });
    expect(body.usage.dsd.acceptance_rule).toBe('sample-match');
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('a verifier SIGKILLed mid-stream ends the stream with a clean error; dsd stays up', async () => {
    const dying = await spawnVerifier('stories260K-f32.gguf');
    const edge = await startTestDsd({ target: { urls: [dying.url] }, draft: { urls: [draft.url] } });
    try {
      const res = await fetch(`${edge.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: prompts[1], max_tokens: 400, temperature: 0, stream: true }),
      });
      expect(res.status).toBe(200);
      // A crash, once the stream has begun: no close frame, no FIN from a process that cleans up.
      const reader = res.body!.getReader();
      await reader.read();
      dying.child.kill('SIGKILL');
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toMatch(/"error":\{/);
      expect(text).toMatch(/upstream_(unavailable|error)/);
      expect((await fetch(`${edge.baseUrl}/health`)).status).toBe(200);
      // The next request gets a clean OpenAI error, not a hang.
      const next = await postJson(`${edge.baseUrl}/v1/completions`, { model, prompt: prompts[2], max_tokens: 8 });
      expect(next.status).toBeGreaterThanOrEqual(500);
      expect(next.body.error.code).toMatch(/^upstream_/);
    } finally {
      dying.child.kill('SIGKILL');
      await edge.close();
    }
  });

  it('SSE helper sanity: the verifier alone streams too', async () => {
    const res = await fetch(`${verifier.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: prompts[0], max_tokens: 8, temperature: 0, stream: true }),
    });
    const events = await readSse(res);
    expect(events.at(-1)).toBe('[DONE]');
  });
});
