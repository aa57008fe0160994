import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { NgramModel } from '../src/demo/ngram-model.js';
import { VllmEmulator } from '../src/demo/vllm-emulator.js';
import { WordTokenizer } from '../src/demo/word-tokenizer.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const models = demoModels();
const PROMPTS = [
  'Once upon a time',
  'One day, Tom and Max',
  'The little bird',
  'Lily went to the beach',
  'The bear was very hungry.',
];

describe('speculation with a vLLM target (emulated) and a llama.cpp draft', () => {
  let vllm: VllmEmulator;
  let draft: LlamaEmulator;
  let dsd: TestDsd;
  let direct: OpenAI;
  let client: OpenAI;

  beforeAll(async () => {
    // A few ms per request, as across a network: the draft then runs ahead of verification, so
    // rounds are sent early (the identity test below covers that path).
    vllm = new VllmEmulator({ model: models.target, alias: 'big-model', latency: { perRequestMs: 5 } });
    draft = new LlamaEmulator({ model: models.draft, alias: 'small' });
    await Promise.all([vllm.listen(), draft.listen()]);
    dsd = await startTestDsd({
      target: { urls: [vllm.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 4 },
    });
    direct = new OpenAI({ baseURL: `${vllm.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    client = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([vllm.close(), draft.close()]);
  });

  it('detects vLLM and serves its model name', async () => {
    expect((await client.models.list()).data[0]?.id).toBe('big-model');
    expect(dsd.router.dsd.upstreams).toBeDefined();
  });

  it('temperature 0: identical to the vLLM target alone, streaming and not', async () => {
    let early = 0;
    for (const prompt of PROMPTS) {
      const want = (await direct.completions.create({ model: 'big-model', prompt, max_tokens: 40, temperature: 0 }))
        .choices[0]?.text;
      const got = await client.completions.create({ model: 'big-model', prompt, max_tokens: 40, temperature: 0 });
      expect(got.choices[0]?.text).toBe(want);
      const usage = got.usage as unknown as {
        dsd: { rounds: number; draft_tokens: number; draft_ahead_early_verifications: number };
      };
      expect(usage.dsd.rounds).toBeGreaterThan(0);
      early += usage.dsd.draft_ahead_early_verifications;
      let streamed = '';
      for await (const c of await client.completions.create({
        model: 'big-model',
        prompt,
        max_tokens: 40,
        temperature: 0,
        stream: true,
      }))
        streamed += c.choices[0]?.text ?? '';
      expect(streamed).toBe(want);
    }
    // DSD_DRAFT_AHEAD_DEPTH=auto sends rounds early to a vLLM target: the identity above held with them.
    expect(early).toBeGreaterThan(0);
    const body = vllm.stats.lastCompletionBody as Record<string, unknown>;
    expect(body.return_tokens_as_token_ids).toBe(true);
    expect(Array.isArray((body.prompt as unknown[])[0])).toBe(true);
    expect(body).not.toHaveProperty('prompt_logprobs');
  });

  it('chat goes through the target /tokenize with messages and matches the target', async () => {
    const req = {
      model: 'big-model',
      messages: [{ role: 'user' as const, content: 'Tell me about Lily' }],
      max_tokens: 30,
      temperature: 0,
    };
    const want = (await direct.chat.completions.create(req)).choices[0]?.message.content;
    expect((await client.chat.completions.create(req)).choices[0]?.message.content).toBe(want);
  });
});

describe('failures and controls (llama.cpp emulators)', () => {
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  let dsd: TestDsd;
  let direct: OpenAI;

  beforeAll(async () => {
    target = new LlamaEmulator({ model: models.target, alias: 'target' });
    draft = new LlamaEmulator({ model: models.draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    // A short breaker cooldown: after the failure tests the draft must come back (half-open probe).
    dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url], timeouts: { headersTimeoutMs: 200 } },
      speculation: { window: 3, windowMax: 6, draftCooldownMs: 50 },
    });
    direct = new OpenAI({ baseURL: `${target.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([target.close(), draft.close()]);
  });

  it('a draft that stalls mid-stream: output still identical, finished target-only', async () => {
    const want = (
      await direct.completions.create({ model: 'target', prompt: 'Once upon a time', max_tokens: 60, temperature: 0 })
    ).choices[0]?.text;
    const res = await fetch(`${dsd.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'target',
        prompt: 'Once upon a time',
        max_tokens: 60,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let raw = '';
    const first = await reader.read();
    raw += decoder.decode(first.value);
    draft.latency.perRequestMs = 1_000; // the draft now answers after its 200 ms timeout
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        raw += decoder.decode(value);
      }
    } finally {
      draft.latency.perRequestMs = 0;
    }
    const events = raw
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
    expect(text).toBe(want);
    const usage = chunks.at(-1).usage;
    expect(usage.dsd.fallback).toMatch(/draft http:\/\/127\.0\.0\.1:\d+ failed/);
    expect(usage.dsd.target_only_tokens).toBeGreaterThan(0);
    expect(dsd.router.dsd.counters.draftFallbacks).toBeGreaterThan(0);
  });

  it('a dead draft from the start: served target-only, identical', async () => {
    const port = Number(new URL(draft.url).port);
    await draft.close();
    try {
      const want = (
        await direct.completions.create({ model: 'target', prompt: 'The little bird', max_tokens: 30, temperature: 0 })
      ).choices[0]?.text;
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: 'The little bird',
        max_tokens: 30,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      expect(r.body.choices[0].text).toBe(want);
    } finally {
      await draft.listen(port);
    }
    // The breaker let the recovered draft back in after its cooldown, through a half-open probe.
    await new Promise((r) => setTimeout(r, 60));
    const back = await postJson(`${dsd.baseUrl}/v1/completions`, {
      model: 'target',
      prompt: 'The little bird',
      max_tokens: 30,
      temperature: 0,
    });
    expect(back.body.usage.dsd.rounds).toBeGreaterThan(0);
    expect(dsd.router.dsd.upstreams.drafts.states()[0]?.state).toBe('closed');
  });

  it(
    'prompts are tokenized on the draft first; a draft that tokenizes differently is caught before anything ' +
      'is sent',
    async () => {
      const outcomes = async () =>
        Object.fromEntries(
          (await dsd.router.dsd.metrics.draftTokenizations.get()).values.map((v) => [v.labels.outcome, v.value]),
        );
      const before = await outcomes();
      // The target's /tokenize is slow (a distant target), so the draft's answer comes first.
      target.onTokenize = async (_text, ids) => {
        await new Promise((r) => setTimeout(r, 40));
        return ids;
      };
      draft.onTokenize = (text, ids) => (text.includes('beach') ? ids.slice(0, -1) : ids);
      try {
        for (const prompt of ['Lily went to the beach', 'The bear was very hungry.']) {
          const want = await direct.completions.create({ model: 'target', prompt, max_tokens: 40, temperature: 0 });
          const got = await postJson(`${dsd.baseUrl}/v1/completions`, {
            model: 'target',
            prompt,
            max_tokens: 40,
            temperature: 0,
          });
          expect(got.status).toBe(200);
          expect(got.body.choices[0].text).toBe(want.choices[0]?.text);
          expect(got.body.usage.prompt_tokens).toBe(want.usage?.prompt_tokens);
          expect(got.body.usage.dsd.rounds).toBeGreaterThan(0);
        }
        const after = await outcomes();
        expect((after.rejected ?? 0) - (before.rejected ?? 0)).toBe(1);
        expect((after.confirmed ?? 0) - (before.confirmed ?? 0)).toBe(1);
        // The cache kept the target's ids: the same prompt again tokenizes nowhere and still matches.
        const again = await postJson(`${dsd.baseUrl}/v1/completions`, {
          model: 'target',
          prompt: 'Lily went to the beach',
          max_tokens: 40,
          temperature: 0,
        });
        const want = await direct.completions.create({
          model: 'target',
          prompt: 'Lily went to the beach',
          max_tokens: 40,
          temperature: 0,
        });
        expect(again.body.choices[0].text).toBe(want.choices[0]?.text);
        expect(again.body.usage.prompt_tokens).toBe(want.usage?.prompt_tokens);
        expect(await outcomes()).toEqual(after);
      } finally {
        target.onTokenize = undefined;
        draft.onTokenize = undefined;
      }
    },
  );

  it('per-request control: header off → passthrough; body window clamped to the bounds', async () => {
    const before = { ...dsd.router.dsd.counters };
    const off = await postJson(
      `${dsd.baseUrl}/v1/completions`,
      { model: 'target', prompt: 'Once', max_tokens: 5, temperature: 0 },
      { 'x-dsd-speculative': 'off' },
    );
    expect(off.status).toBe(200);
    expect(off.body.usage.dsd).toBeUndefined();
    expect(dsd.router.dsd.counters.passthrough).toBe(before.passthrough + 1);
    const wide = await postJson(`${dsd.baseUrl}/v1/completions`, {
      model: 'target',
      prompt: 'Once',
      max_tokens: 40,
      temperature: 0,
      dsd: { window: 50 },
    });
    expect(wide.status).toBe(200);
    const perRound = wide.body.usage.dsd.draft_tokens / wide.body.usage.dsd.rounds;
    expect(perRound).toBeLessThanOrEqual(6);
    expect(perRound).toBeGreaterThan(3);
    const bad = await postJson(
      `${dsd.baseUrl}/v1/completions`,
      { model: 'target', prompt: 'Once', max_tokens: 5 },
      { 'x-dsd-window': 'lots' },
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('x-dsd-window');
  });

  it('requests the engine cannot accelerate exactly go to the target unchanged', async () => {
    const before = dsd.router.dsd.counters.passthrough;
    for (const extra of [
      { n: 2 },
      { logit_bias: { '5': 10 } },
      { response_format: { type: 'json_object' } },
      { presence_penalty: 0.5 },
      { suffix: ' The end.' },
    ]) {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: 'Once',
        max_tokens: 3,
        temperature: 0,
        ...extra,
      });
      expect(r.status).toBe(200);
      expect(r.body.usage.dsd).toBeUndefined();
    }
    expect(dsd.router.dsd.counters.passthrough).toBe(before + 5);
  });

  it('logprobs come from the target verification: equal to the target own logprobs for each token', async () => {
    const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
      model: 'target',
      prompt: 'Once upon a time',
      max_tokens: 12,
      temperature: 0,
      logprobs: 3,
    });
    expect(r.status).toBe(200);
    expect(r.body.usage.dsd.rounds).toBeGreaterThan(0);
    const lp = r.body.choices[0].logprobs;
    const native = await postJson(`${target.url}/completion`, {
      prompt: 'Once upon a time',
      n_predict: 12,
      temperature: 0,
      n_probs: 3,
      return_tokens: true,
    });
    const want = native.body.completion_probabilities as {
      token: string;
      logprob: number;
      top_logprobs: { token: string; logprob: number }[];
    }[];
    expect(lp.tokens).toEqual(want.map((p) => p.token));
    for (const [i, v] of (lp.token_logprobs as number[]).entries()) expect(v).toBeCloseTo(want[i]!.logprob, 6);
    expect(Object.keys(lp.top_logprobs[0])).toEqual(want[0]!.top_logprobs.map((t) => t.token));
    expect(lp.tokens.join('')).toBe(r.body.choices[0].text);
    expect(lp.text_offset[1]).toBe(lp.tokens[0].length);
    const chat = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model: 'target',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = chat.body.choices[0].logprobs.content;
    expect(content).toHaveLength(5);
    expect(content[0]).toEqual({
      token: expect.any(String),
      logprob: expect.any(Number),
      bytes: expect.any(Array),
      top_logprobs: expect.any(Array),
    });
    expect(content[0].top_logprobs).toHaveLength(2);
  });

  it('non-streaming responses carry the speculation figures as headers and OpenAI prediction fields', async () => {
    const r = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model: 'target',
      messages: [{ role: 'user', content: 'Tell me a story' }],
      max_tokens: 20,
      temperature: 0,
    });
    expect(r.status).toBe(200);
    const u = r.body.usage;
    expect(
      u.completion_tokens_details.accepted_prediction_tokens + u.completion_tokens_details.rejected_prediction_tokens,
    ).toBe(u.dsd.draft_tokens);
    expect(r.headers.get('x-dsd-rounds')).toBe(String(u.dsd.rounds));
    expect(r.headers.get('x-dsd-accepted-tokens')).toBe(String(u.dsd.accepted_tokens));
    expect(Number(r.headers.get('x-dsd-mean-acceptance-length'))).toBeCloseTo(
      1 + u.dsd.accepted_tokens / u.dsd.rounds,
      2,
    );
    expect(r.body.choices[0].message.role).toBe('assistant');
  });

  it('stop strings end the output before them, across rounds', async () => {
    const full =
      (await direct.completions.create({ model: 'target', prompt: 'Once upon a time', max_tokens: 60, temperature: 0 }))
        .choices[0]?.text ?? '';
    const stop = full.slice(30, 36);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
      model: 'target',
      prompt: 'Once upon a time',
      max_tokens: 60,
      temperature: 0,
      stop: [stop],
    });
    expect(r.body.choices[0].text).toBe(expected);
    expect(r.body.choices[0].finish_reason).toBe('stop');
  });

  it('multi-byte characters split across byte tokens come out whole', async () => {
    // A vocabulary without "€", and models trained to write it: the output must spell it with
    // three byte tokens (E2 82 AC), which arrive in different tokens and possibly rounds.
    const tokenizer = WordTokenizer.fromText('Lily paid for the ball.');
    const text = Array.from({ length: 5 }, () => 'Lily paid 5€ for the ball.').join('\n\n');
    const euroTarget = new LlamaEmulator({
      model: NgramModel.train(tokenizer, text, 3, [0.7, 0.2, 0.1]),
      alias: 'euro',
    });
    const euroDraft = new LlamaEmulator({
      model: NgramModel.train(tokenizer, text, 2, [0.8, 0.2]),
      alias: 'euro-draft',
    });
    await Promise.all([euroTarget.listen(), euroDraft.listen()]);
    const euro = await startTestDsd({
      target: { urls: [euroTarget.url] },
      draft: { urls: [euroDraft.url] },
      speculation: { window: 2 },
    });
    try {
      expect(tokenizer.encode('5€', { addBos: false, parseSpecial: false })).toHaveLength(4);
      const r = await postJson(`${euro.baseUrl}/v1/completions`, {
        model: 'euro',
        prompt: 'Lily paid 5',
        max_tokens: 8,
        temperature: 0,
      });
      expect(r.body.choices[0].text).toBe('€ for the ball.');
      const streamed = await fetch(`${euro.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'euro',
          prompt: 'Lily paid 5',
          max_tokens: 8,
          temperature: 0,
          stream: true,
          dsd: { window: 1 },
        }),
      });
      const pieces = (await streamed.text())
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => JSON.parse(e.slice(6)).choices[0]?.text ?? '');
      expect(pieces.join('')).toBe('€ for the ball.');
      expect(pieces.join('')).not.toContain('\uFFFD');
    } finally {
      await euro.close();
      await Promise.all([euroTarget.close(), euroDraft.close()]);
    }
  });
});
