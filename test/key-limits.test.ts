import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';
import { tenantOf } from '../src/server/http/key-limits.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const MODEL = 'dsd-demo-target';
const chat = (maxTokens: number) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: maxTokens,
});

describe('per-key limits (DSD_KEY_LIMITS)', () => {
  let demo: DemoBackends;
  const started: TestDsd[] = [];
  const start = async (limits: string) => {
    const dsd = await startTestDsd(
      { target: { urls: [demo.target.url] } },
      { DSD_API_KEY: 'key-a,key-b', DSD_KEY_LIMITS: limits },
    );
    started.push(dsd);
    return dsd;
  };
  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  beforeAll(async () => {
    demo = await startDemoBackends();
  });
  afterAll(async () => {
    await Promise.all(started.map((d) => d.close()));
    await demo?.close();
  });

  it('reads rpm, tpm and concurrency, and refuses anything else', () => {
    expect(loadConfig({ DSD_KEY_LIMITS: 'rpm=60, tpm=1000,concurrency=2' }).keyLimits).toEqual({
      requestsPerMinute: 60,
      tokensPerMinute: 1000,
      concurrency: 2,
    });
    expect(() => loadConfig({ DSD_KEY_LIMITS: 'rpm=0' })).toThrow(/DSD_KEY_LIMITS/);
    expect(() => loadConfig({ DSD_KEY_LIMITS: 'burst=3' })).toThrow(/DSD_KEY_LIMITS/);
  });

  it('requests per minute: the third request of a key gets 429 with Retry-After; other keys do not', async () => {
    const dsd = await start('rpm=2');
    const url = `${dsd.baseUrl}/v1/chat/completions`;
    expect((await postJson(url, chat(2), as('key-a'))).status).toBe(200);
    expect((await postJson(url, chat(2), as('key-a'))).status).toBe(200);
    const third = await postJson(url, chat(2), as('key-a'));
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('rate_limit_exceeded');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await postJson(url, chat(2), as('key-b'))).status).toBe(200);
    const metrics = await (await fetch(`${dsd.baseUrl}/metrics`)).text();
    expect(metrics).toContain(`dsd_key_rejected_total{key="${tenantOf('key-a')}",limit="requests_per_minute"} 1`);
    expect(metrics).not.toContain('key-a');
  });

  it('tokens per minute: a key that spent its budget waits until it refills', async () => {
    const dsd = await start('tpm=5');
    const url = `${dsd.baseUrl}/v1/completions`;
    const first = await postJson(url, { model: MODEL, prompt: 'The cat', max_tokens: 8 }, as('key-a'));
    expect(first.status).toBe(200);
    expect(first.body.usage.completion_tokens).toBeGreaterThan(5);
    const next = await postJson(url, { model: MODEL, prompt: 'The cat', max_tokens: 1 }, as('key-a'));
    expect(next.status).toBe(429);
    expect(next.body.error.message).toMatch(/tokens-per-minute/);
  });

  it('concurrency: a second generation at once is refused while the first streams', async () => {
    const dsd = await start('concurrency=1');
    const url = `${dsd.baseUrl}/v1/completions`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...as('key-a') },
      body: JSON.stringify({ model: MODEL, prompt: 'The cat', max_tokens: 200, stream: true }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const second = await postJson(url, { model: MODEL, prompt: 'The dog', max_tokens: 2 }, as('key-a'));
    expect(second.status).toBe(429);
    expect((await postJson(url, { model: MODEL, prompt: 'The dog', max_tokens: 2 }, as('key-b'))).status).toBe(200);
    await reader.cancel();
  });
});
