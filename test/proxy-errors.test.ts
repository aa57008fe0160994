import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { freePort } from './helpers/llama-server.js';

const MODEL = 'dsd-demo-target';
let demo: DemoBackends;
let dsd: TestDsd;

beforeAll(async () => {
  demo = await startDemoBackends();
  dsd = await startTestDsd({ target: { urls: [demo.target.url] }, bodyLimitBytes: 64 * 1024 });
});
afterAll(async () => {
  await dsd.close();
  await demo.close();
});

function expectEnvelope(body: any, code: string, param: string | null = null) {
  expect(body).toEqual({ error: { message: expect.any(String), type: expect.any(String), param, code } });
}

describe('bad input gets its status and an OpenAI error envelope', () => {
  const chat = () => `${dsd.baseUrl}/v1/chat/completions`;
  const ok = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };

  it('malformed JSON → 400 invalid_json', async () => {
    const r = await postJson(chat(), '{"model": "x", ');
    expect(r.status).toBe(400);
    expectEnvelope(r.body, 'invalid_json');
    expect(r.body.error.type).toBe('invalid_request_error');
  });

  it.each([
    ['missing messages', { model: MODEL }, 'messages'],
    ['messages not an array', { model: MODEL, messages: 'hi' }, 'messages'],
    ['empty messages', { model: MODEL, messages: [] }, 'messages'],
    ['bad role', { model: MODEL, messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role'],
    ['bad content', { model: MODEL, messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    ['missing model', { messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['max_tokens < 1', { ...ok, max_tokens: 0 }, 'max_tokens'],
    ['max_tokens not an integer', { ...ok, max_tokens: 1.5 }, 'max_tokens'],
    ['temperature out of range', { ...ok, temperature: 3 }, 'temperature'],
    ['temperature wrong type', { ...ok, temperature: 'hot' }, 'temperature'],
    ['top_p out of range', { ...ok, top_p: 1.5 }, 'top_p'],
    ['stream not boolean', { ...ok, stream: 'yes' }, 'stream'],
    ['stop wrong type', { ...ok, stop: [1] }, 'stop'],
    ['n out of range', { ...ok, n: 0 }, 'n'],
    ['dsd.window wrong type', { ...ok, dsd: { window: 'big' } }, 'window'],
  ])('%s → 400 naming the field', async (_name, body, param) => {
    const r = await postJson(chat(), body);
    expect(r.status).toBe(400);
    expectEnvelope(r.body, 'invalid_request', param);
    expect(r.body.error.message).toContain(
      param
        .split('.')
        .pop()!
        .replace(/\[\d+\]/, ''),
    );
  });

  it('a body that is not an object → 400', async () => {
    const r = await postJson(chat(), '[1,2]');
    expect(r.status).toBe(400);
    expectEnvelope(r.body, 'invalid_request');
  });

  it('completions without prompt → 400 naming prompt', async () => {
    const r = await postJson(`${dsd.baseUrl}/v1/completions`, { model: MODEL });
    expect(r.status).toBe(400);
    expectEnvelope(r.body, 'invalid_request', 'prompt');
  });

  it('oversized body → 413', async () => {
    const r = await postJson(chat(), { ...ok, messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] });
    expect(r.status).toBe(413);
    expectEnvelope(r.body, 'payload_too_large');
  });

  it('unknown model → 404 model_not_found', async () => {
    const r = await postJson(chat(), { ...ok, model: 'gpt-17' });
    expect(r.status).toBe(404);
    expectEnvelope(r.body, 'model_not_found', 'model');
  });

  it('unknown route → 404 in the envelope', async () => {
    const r = await postJson(`${dsd.baseUrl}/v1/embeddings`, {});
    expect(r.status).toBe(404);
    expectEnvelope(r.body, 'not_found');
  });

  it('never echoes prompt text in errors', async () => {
    const secret = 'my-secret-prompt-text';
    const r = await postJson(chat(), { model: MODEL, messages: [{ role: 'user', content: secret }], temperature: 9 });
    expect(JSON.stringify(r.body)).not.toContain(secret);
  });
});

describe('API keys', () => {
  let keyed: TestDsd;
  beforeAll(async () => {
    keyed = await startTestDsd({ target: { urls: [demo.target.url] }, apiKeys: ['k-one', 'k-two'] });
  });
  afterAll(() => keyed.close());
  const body = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };

  it('missing key → 401', async () => {
    const r = await postJson(`${keyed.baseUrl}/v1/chat/completions`, body);
    expect(r.status).toBe(401);
    expectEnvelope(r.body, 'unauthorized');
  });
  it('wrong key → 401 without echoing the key', async () => {
    const r = await postJson(`${keyed.baseUrl}/v1/chat/completions`, body, { authorization: 'Bearer k-wrong' });
    expect(r.status).toBe(401);
    expect(JSON.stringify(r.body)).not.toContain('k-wrong');
  });
  it('any configured key is accepted; /health needs none', async () => {
    expect(
      (await postJson(`${keyed.baseUrl}/v1/chat/completions`, body, { authorization: 'Bearer k-two' })).status,
    ).toBe(200);
    expect((await fetch(`${keyed.baseUrl}/health`)).status).toBe(200);
  });
});

describe('upstream failures', () => {
  it('a dead target → 502 upstream_unavailable', async () => {
    const port = await freePort();
    const dead = await startTestDsd({ target: { urls: [`http://127.0.0.1:${port}`], kind: 'llamacpp' } });
    try {
      const r = await postJson(`${dead.baseUrl}/v1/completions`, { model: MODEL, prompt: 'x' });
      expect(r.status).toBe(502);
      expectEnvelope(r.body, 'upstream_unavailable');
      const ready = await fetch(`${dead.baseUrl}/ready`);
      expect(ready.status).toBe(503);
    } finally {
      await dead.close();
    }
  });

  it('a target that does not answer in time → 504 within the configured timeout', async () => {
    const stalled: Server = createServer(() => {
      // never answers
    });
    stalled.listen(0, '127.0.0.1');
    await once(stalled, 'listening');
    const port = (stalled.address() as { port: number }).port;
    const slow = await startTestDsd({
      target: { urls: [`http://127.0.0.1:${port}`], kind: 'llamacpp', timeouts: { headersTimeoutMs: 300 } },
    });
    try {
      const started = Date.now();
      const r = await postJson(`${slow.baseUrl}/v1/completions`, { model: MODEL, prompt: 'x' });
      const elapsed = Date.now() - started;
      expect(r.status).toBe(504);
      expectEnvelope(r.body, 'upstream_timeout');
      expect(elapsed).toBeLessThan(5_000);
    } finally {
      await slow.close();
      stalled.closeAllConnections();
      stalled.close();
    }
  });

  it('a slow generation → 504 once the target stalls past the timeout', async () => {
    const slow = await startTestDsd({ target: { urls: [demo.target.url], timeouts: { headersTimeoutMs: 300 } } });
    await postJson(`${slow.baseUrl}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 1 });
    demo.target.latency.perRequestMs = 2_000;
    try {
      const r = await postJson(`${slow.baseUrl}/v1/completions`, { model: MODEL, prompt: 'x', max_tokens: 2 });
      expect(r.status).toBe(504);
    } finally {
      demo.target.latency.perRequestMs = 0;
      await slow.close();
    }
  });
});

describe('model names', () => {
  const body = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });

  it('aliases are accepted, the served name is shown, other names stay 404', async () => {
    const aliased = await startTestDsd({
      target: { urls: [demo.target.url] },
      models: { servedName: 'story-teller', aliases: ['gpt-4o-mini'] },
    });
    try {
      const models = await fetch(`${aliased.baseUrl}/v1/models`).then((r) => r.json() as Promise<any>);
      expect(models.data.map((m: { id: string }) => m.id)).toEqual(['story-teller']);
      for (const name of ['story-teller', 'gpt-4o-mini', MODEL])
        expect((await postJson(`${aliased.baseUrl}/v1/chat/completions`, body(name))).status).toBe(200);
      const other = await postJson(`${aliased.baseUrl}/v1/chat/completions`, body('gpt-4o'));
      expect(other.status).toBe(404);
      expect(other.body.error.message).toContain("serves 'story-teller'");
    } finally {
      await aliased.close();
    }
  });

  it('DSD_ACCEPT_ANY_MODEL=true takes any name', async () => {
    const any = await startTestDsd({ target: { urls: [demo.target.url] } }, { DSD_ACCEPT_ANY_MODEL: 'true' });
    try {
      expect((await postJson(`${any.baseUrl}/v1/chat/completions`, body('whatever-4'))).status).toBe(200);
    } finally {
      await any.close();
    }
  });
});
