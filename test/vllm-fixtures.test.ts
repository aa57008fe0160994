import { readFileSync } from 'node:fs';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VllmServer } from '../src/backends/vllm/client.js';

/**
 * The vLLM adapter against responses recorded from a real vLLM 0.32.0 (CPU build) by
 * scripts/record-vllm-fixtures.ts. Each fixture holds the request as sent and the response as
 * received; the adapter must send the same kind of request and read the response correctly.
 */
interface Fixture {
  request: { method: string; path: string; body?: any };
  status: number;
  response: any;
}

const fixture = (name: string): Fixture =>
  JSON.parse(readFileSync(new URL(`./fixtures/vllm/${name}.json`, import.meta.url), 'utf8')) as Fixture;

const ORIGIN = 'http://vllm.test:8000';
const timeouts = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 };
const greedy = { temperature: 0, topP: 1, topK: 0, minP: 0 };
const signal = () => AbortSignal.timeout(5_000);

describe('the vLLM adapter reads recorded vLLM 0.32.0 responses', () => {
  let agent: MockAgent;
  let server: VllmServer;
  const sent: Record<string, any> = {};

  function replay(name: string): void {
    const f = fixture(name);
    const streamed = typeof f.response === 'string';
    agent
      .get(ORIGIN)
      .intercept({ path: f.request.path, method: f.request.method })
      .reply(
        f.status,
        (opts) => {
          sent[name] = opts.body === undefined || opts.body === null ? undefined : JSON.parse(String(opts.body));
          return streamed ? f.response : JSON.stringify(f.response);
        },
        { headers: { 'content-type': streamed ? 'text/event-stream' : 'application/json' } },
      );
  }

  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    server = new VllmServer({ baseUrl: ORIGIN, role: 'target', timeouts, model: 'stories-f32', dispatcher: agent });
  });
  afterEach(async () => {
    await agent.close();
  });

  it('describes the server from /v1/models and finds BOS with an empty /tokenize', async () => {
    replay('models');
    replay('tokenize-empty-special');
    const info = await server.describe(signal());
    expect(info).toMatchObject({ kind: 'vllm', modelId: 'stories-f32', contextTokens: 512, bosId: 1 });
  });

  it('tokenizes text and messages, and detokenizes, with the recorded request shapes', async () => {
    replay('tokenize');
    replay('tokenize-messages');
    replay('detokenize');
    expect(await server.tokenize('Once upon a time', true, signal())).toEqual(fixture('tokenize').response.tokens);
    const messages = fixture('tokenize-messages').request.body.messages;
    const chat = await server.chatPromptIds(messages, signal());
    expect(chat).toEqual(fixture('tokenize-messages').response.tokens);
    expect(chat[0]).toBe(1); // the converted model's ChatML template starts with BOS, as llama-server's
    expect(sent['tokenize-messages']).toMatchObject({ messages, add_generation_prompt: true });
    expect(await server.detokenize([1, 403, 407, 261, 378], signal())).toBe('<s> Once upon a time');
  });

  it('proposes from an id prompt: ids, logprobs and top-N from token_id keys', async () => {
    replay('completion-ids');
    const f = fixture('completion-ids');
    const tokens = await server.propose({
      promptIds: f.request.body.prompt,
      maxTokens: 8,
      sampling: greedy,
      topN: 2,
      postSamplingProbs: false,
      signal: signal(),
    });
    const choice = f.response.choices[0];
    expect(tokens.map((t) => t.id)).toEqual(choice.token_ids);
    expect(tokens[0]?.logprob).toBe(choice.logprobs.token_logprobs[0]);
    expect(tokens[0]?.top?.map((t) => t.id)).toEqual([432, 383]);
    expect(tokens.some((t) => t.endOfGeneration)).toBe(false); // finish_reason "length"
    expect(sent['completion-ids']).toMatchObject({
      prompt: f.request.body.prompt,
      return_tokens_as_token_ids: true,
      return_token_ids: true,
    });
  });

  it('scores k+1 prompts from one batched completion', async () => {
    replay('completion-batch');
    const f = fixture('completion-batch');
    const scores = await server.score({
      prompts: f.request.body.prompt,
      sampling: greedy,
      topN: 5,
      postSamplingProbs: false,
      signal: signal(),
    });
    expect(scores.map((s) => s.token.id)).toEqual([432, 383, 286]);
    expect(scores[1]?.token.top).toHaveLength(5);
    expect(sent['completion-batch'].max_tokens).toBe(1);
  });

  it('streams tokens from recorded SSE chunks', async () => {
    replay('completion-stream');
    const got: number[] = [];
    for await (const t of server.generate({
      promptIds: [1, 403, 407, 261, 378],
      maxTokens: 4,
      sampling: greedy,
      topN: 2,
      postSamplingProbs: false,
      signal: signal(),
    }))
      got.push(t.id);
    expect(got).toEqual([432, 383, 286, 261]);
  });

  it('relays vLLM’s request errors (400) and treats a wrong model name as dsd’s configuration fault', async () => {
    const propose = () =>
      server.propose({
        promptIds: [1],
        maxTokens: 1,
        sampling: greedy,
        topN: 1,
        postSamplingProbs: false,
        signal: signal(),
      });
    replay('error-logprobs');
    await expect(propose()).rejects.toMatchObject({ status: 400, message: expect.stringContaining('max allowed: 20') });
    replay('error-context');
    await expect(propose()).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining('maximum context length is 512'),
    });
    replay('error-model');
    await expect(propose()).rejects.toMatchObject({ status: 502, upstreamStatus: 404 });
  });

  it('passes chat streams through as recorded', async () => {
    replay('chat-stream');
    const chunks: any[] = [];
    for await (const c of server.openAiStream('chat', fixture('chat-stream').request.body, signal())) chunks.push(c);
    const text = chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
    expect(text).toBe('"Here');
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(4);
  });
});
