import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';

const skip = llamaSkipReason();
if (skip) console.warn(`skipping real llama-server tests: ${skip}`);

describe.skipIf(skip !== undefined)('real llama-server target (stories260K-f32), no draft', () => {
  let target: LlamaProcess;
  let dsd: TestDsd;
  let viaDsd: OpenAI;
  let direct: OpenAI;

  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'stories-target', slots: 2 });
    dsd = await startTestDsd({ target: { urls: [target.url] } });
    viaDsd = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
    direct = new OpenAI({ baseURL: `${target.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await dsd?.close();
    await target?.stop();
  });

  it('detects llama.cpp and serves its model', async () => {
    const models = await viaDsd.models.list();
    expect(models.data[0]?.id).toBe('stories-target');
    expect(dsd.router.dsd.upstreams).toBeDefined();
  });

  it('completions at temperature 0: same text as the server directly, streaming and not', async () => {
    const req = { model: 'stories-target', prompt: 'Once upon a time', max_tokens: 48, temperature: 0 };
    const expected = (await direct.completions.create(req)).choices[0]?.text;
    expect(expected).toMatch(/^, there was a little girl named Lily/);
    const whole = await viaDsd.completions.create(req);
    expect(whole.choices[0]?.text).toBe(expected);
    expect(whole.usage?.completion_tokens).toBe(48);
    let streamed = '';
    for await (const c of await viaDsd.completions.create({ ...req, stream: true }))
      streamed += c.choices[0]?.text ?? '';
    expect(streamed).toBe(expected);
  });

  it('chat at temperature 0: same text as the server directly, streaming and not', async () => {
    const req = {
      model: 'stories-target',
      messages: [{ role: 'user' as const, content: 'Tell me a story' }],
      max_tokens: 40,
      temperature: 0,
    };
    const expected = (await direct.chat.completions.create(req)).choices[0]?.message.content;
    expect(expected?.length).toBeGreaterThan(0);
    const whole = await viaDsd.chat.completions.create(req);
    expect(whole.choices[0]?.message.content).toBe(expected);
    let streamed = '';
    const stream = await viaDsd.chat.completions.create({
      ...req,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of stream) {
      streamed += c.choices[0]?.delta.content ?? '';
      usage = c.usage ?? usage;
    }
    expect(streamed).toBe(expected);
    expect(usage?.completion_tokens).toBe(40);
  });
});
