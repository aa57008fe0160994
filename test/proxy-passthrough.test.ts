import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';
import { readSse, startTestDsd, type TestDsd } from './helpers/dsd.js';

const MODEL = 'dsd-demo-target';
let demo: DemoBackends;
let dsd: TestDsd;
let client: OpenAI;

beforeAll(async () => {
  demo = await startDemoBackends();
  dsd = await startTestDsd({ target: { urls: [demo.target.url] } });
  client = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await dsd.close();
  await demo.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('passthrough to the target (no draft configured)', () => {
  it('lists the target model', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('chat, non-streaming, in OpenAI shape with the client-facing model name', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me a story' }],
      max_tokens: 12,
      temperature: 0,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe(MODEL);
    expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(r.choices[0]?.finish_reason).toBe('length');
    expect(r.usage?.completion_tokens).toBe(12);
    expect((r as unknown as Record<string, unknown>).timings).toBeUndefined();
  });

  it('completions, streaming, equals the non-streaming text at temperature 0', async () => {
    const whole = await client.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 20,
      temperature: 0,
    });
    const stream = await client.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 20,
      temperature: 0,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(whole.choices[0]?.text);
  });

  it('SSE ends with [DONE]; usage chunk only when include_usage is asked', async () => {
    const body = {
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 5,
      temperature: 0,
      stream: true,
    };
    const post = (b: object) =>
      fetch(`${dsd.baseUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(b),
      });
    const without = await post(body);
    expect(without.headers.get('content-type')).toContain('text/event-stream');
    const plain = await readSse(without);
    expect(plain[plain.length - 1]).toBe('[DONE]');
    expect(plain.some((d) => d !== '[DONE]' && JSON.parse(d).usage)).toBe(false);
    const withUsage = await readSse(await post({ ...body, stream_options: { include_usage: true } }));
    expect(withUsage[withUsage.length - 1]).toBe('[DONE]');
    const usage = JSON.parse(withUsage[withUsage.length - 2] as string);
    expect(usage.choices).toEqual([]);
    expect(usage.usage.completion_tokens).toBe(5);
  });

  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    demo.target.latency.perTokenMs = 20;
    try {
      const abortedBefore = demo.target.stats.aborted;
      const controller = new AbortController();
      const res = await fetch(`${dsd.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'Once upon a time', max_tokens: 500, stream: true }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      for (let i = 0; i < 50 && demo.target.stats.aborted === abortedBefore; i++) await sleep(20);
      expect(demo.target.stats.aborted).toBe(abortedBefore + 1);
    } finally {
      demo.target.latency.perTokenMs = 0;
    }
  });

  it('health is local and ready reflects the target', async () => {
    expect(await (await fetch(`${dsd.baseUrl}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${dsd.baseUrl}/ready`);
    expect(ready.status).toBe(200);
  });
});
