import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VllmServer } from '../src/backends/vllm/client.js';
import { parseTokenKey, tokensOfChoice } from '../src/backends/vllm/mapping.js';

const ORIGIN = 'http://vllm.test:8000';
const timeouts = { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 };
const signal = () => AbortSignal.timeout(5_000);

/** The verification response for 3 prompts, built exactly from the shapes in UPSTREAM-APIS.md §2. */
const verification = {
  id: 'cmpl-1',
  object: 'text_completion',
  created: 1,
  model: 'big',
  choices: [2, 0, 1].map((j) => ({
    index: j,
    text: ['x', 'y', 'z'][j],
    token_ids: [[13, 306, 2][j]],
    logprobs: {
      tokens: [`token_id:${[13, 306, 2][j]}`],
      token_logprobs: [-1.1],
      top_logprobs: [{ [`token_id:${[13, 306, 2][j]}`]: -1.1, 'token_id:306': -2.0, 'token_id:7': -9999.0 }],
      text_offset: [0],
    },
    finish_reason: j === 2 ? 'stop' : 'length',
    stop_reason: null,
  })),
  usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
};

describe('vLLM adapter wire format', () => {
  let agent: MockAgent;
  let server: VllmServer;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    server = new VllmServer({
      baseUrl: ORIGIN,
      role: 'target',
      apiKey: 'sk-target',
      timeouts,
      model: 'big',
      dispatcher: agent,
    });
  });
  afterEach(async () => {
    await agent.close();
  });

  it('verifies k+1 prompts in one /v1/completions call, prefix-cache friendly', async () => {
    let sent: any;
    let auth: unknown;
    agent
      .get(ORIGIN)
      .intercept({ path: '/v1/completions', method: 'POST' })
      .reply(200, (opts) => {
        sent = JSON.parse(String(opts.body));
        auth = (opts.headers as Record<string, string>).authorization;
        return verification;
      });
    const result = await server.score({
      prompts: [
        [1, 5],
        [1, 5, 13],
        [1, 5, 13, 306],
      ],
      sampling: { temperature: 0.7, topP: 1, topK: 0, minP: 0 },
      topN: 5,
      postSamplingProbs: false,
      signal: signal(),
    });
    expect(sent).toMatchObject({
      model: 'big',
      prompt: [
        [1, 5],
        [1, 5, 13],
        [1, 5, 13, 306],
      ],
      max_tokens: 1,
      logprobs: 5,
      temperature: 0.7,
      top_p: 1,
      top_k: -1,
      return_tokens_as_token_ids: true,
      return_token_ids: true,
    });
    expect(sent).not.toHaveProperty('prompt_logprobs');
    expect(sent).not.toHaveProperty('echo');
    expect(sent).not.toHaveProperty('seed');
    expect(auth).toBe('Bearer sk-target');
    // choices come back out of order; index = prompt index
    expect(result.map((r) => r.token.id)).toEqual([13, 306, 2]);
    expect(result[0]!.token.logprob).toBe(-1.1);
    expect(result[0]!.token.top?.map((t) => t.id)).toEqual([13, 306, 7]);
    expect(result[0]!.token.top?.[2]?.logprob).toBe(-Infinity);
    expect(result[2]!.token.endOfGeneration).toBe(true);
  });

  it('a batch answer with the wrong number of choices is a bad upstream response', async () => {
    agent
      .get(ORIGIN)
      .intercept({ path: '/v1/completions', method: 'POST' })
      .reply(200, { ...verification, choices: verification.choices.slice(1) });
    await expect(
      server.score({
        prompts: [[1], [1, 2], [1, 2, 3]],
        sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 },
        topN: 1,
        postSamplingProbs: false,
        signal: signal(),
      }),
    ).rejects.toMatchObject({ code: 'upstream_bad_response' });
  });

  it('builds chat prompts with /tokenize messages and reads ids', async () => {
    let sent: any;
    agent
      .get(ORIGIN)
      .intercept({ path: '/tokenize', method: 'POST' })
      .reply(200, (opts) => {
        sent = JSON.parse(String(opts.body));
        return { count: 3, max_model_len: 4096, tokens: [1, 22, 33] };
      });
    expect(await server.chatPromptIds([{ role: 'user', content: 'hi' }], signal())).toEqual([1, 22, 33]);
    expect(sent).toEqual({ model: 'big', messages: [{ role: 'user', content: 'hi' }], add_generation_prompt: true });
  });

  it('detokenizes with /detokenize', async () => {
    agent.get(ORIGIN).intercept({ path: '/detokenize', method: 'POST' }).reply(200, { prompt: 'Hello world' });
    expect(await server.detokenize([1, 2], signal())).toBe('Hello world');
  });

  it('an upstream 400 is relayed with its status; a 401 between dsd and vLLM is a 502', async () => {
    agent.get(ORIGIN).intercept({ path: '/v1/completions', method: 'POST' }).reply(400, {
      object: 'error',
      message: "This model's maximum context length is 4096 tokens",
      type: 'BadRequestError',
      code: 400,
    });
    const bad = server.propose({
      promptIds: [1],
      maxTokens: 1,
      sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 },
      topN: 1,
      postSamplingProbs: false,
      signal: signal(),
    });
    await expect(bad).rejects.toMatchObject({
      status: 400,
      code: 'upstream_error',
      message: expect.stringContaining('maximum context length'),
    });
    agent.get(ORIGIN).intercept({ path: '/v1/completions', method: 'POST' }).reply(401, { error: 'Unauthorized' });
    const unauthorized = server.propose({
      promptIds: [1],
      maxTokens: 1,
      sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 },
      topN: 1,
      postSamplingProbs: false,
      signal: signal(),
    });
    await expect(unauthorized).rejects.toMatchObject({ status: 502, upstreamStatus: 401 });
  });

  it('parses token_id keys only', () => {
    expect(parseTokenKey('token_id:42')).toBe(42);
    expect(parseTokenKey('Ġworld')).toBeUndefined();
    expect(tokensOfChoice({ index: 0, logprobs: { tokens: ['token_id:9', 'token_id:10'] } }).map((t) => t.id)).toEqual([
      9, 10,
    ]);
  });
});
