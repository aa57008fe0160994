import type { Response } from 'express';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { speakResponses } from '../src/server/http/responses-output.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';

const skip = llamaSkipReason();

/**
 * POST /v1/responses through the official openai client (responses.create and responses.stream),
 * speculated like chat, against real llama-servers: at temperature 0 the text equals the target
 * alone answering the same conversation on its own chat endpoint.
 */
describe.skipIf(skip !== undefined)('the Responses API', () => {
  let target: LlamaProcess;
  let draft: LlamaProcess;
  let dsd: TestDsd;
  let client: OpenAI;

  /** The target alone, on llama-server's own OpenAI chat endpoint. */
  async function alone(messages: { role: string; content: string }[], maxTokens: number): Promise<string> {
    const r = await postJson(`${target.url}/v1/chat/completions`, {
      messages,
      max_tokens: maxTokens,
      temperature: 0,
    });
    return r.body.choices[0].message.content;
  }

  beforeAll(async () => {
    [target, draft] = await Promise.all([
      startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'target', slots: 6 }),
      startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 }),
    ]);
    dsd = await startTestDsd({ target: { urls: [target.url] }, draft: { urls: [draft.url] } });
    client = new OpenAI({ baseURL: `${dsd.baseUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await dsd?.close();
    await Promise.all([target?.stop(), draft?.stop()]);
  });

  it('responses.create with text input and instructions: the target’s own text, speculated', async () => {
    const r = await client.responses.create({
      model: 'target',
      instructions: 'You tell stories.',
      input: 'Once upon a time',
      max_output_tokens: 48,
      temperature: 0,
      store: false,
    });
    const expected = await alone(
      [
        { role: 'system', content: 'You tell stories.' },
        { role: 'user', content: 'Once upon a time' },
      ],
      48,
    );
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.output_text).toBe(expected);
    expect(r.status).toBe('incomplete');
    expect(r.incomplete_details?.reason).toBe('max_output_tokens');
    expect(r.usage?.output_tokens).toBe(48);
    expect((r.usage as unknown as { dsd: { rounds: number } }).dsd.rounds).toBeGreaterThan(0);
  });

  it('message-list input with parts, streamed by responses.stream: the Responses event sequence', async () => {
    const input = [
      { role: 'user' as const, content: [{ type: 'input_text' as const, text: 'Tom and his dog went to the park.' }] },
      { role: 'assistant' as const, content: 'They played with a ball.' },
      { role: 'user' as const, content: 'What happened next?' },
    ];
    const types: string[] = [];
    let deltas = '';
    const stream = client.responses.stream({ model: 'target', input, max_output_tokens: 40, temperature: 0 });
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') deltas += event.delta;
    }
    const final = await stream.finalResponse();
    const expected = await alone(
      [
        { role: 'user', content: 'Tom and his dog went to the park.' },
        { role: 'assistant', content: 'They played with a ball.' },
        { role: 'user', content: 'What happened next?' },
      ],
      40,
    );
    expect(deltas).toBe(expected);
    expect(final.output_text).toBe(expected);
    expect(final.usage?.output_tokens).toBe(40);
    expect(types.slice(0, 4)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
    ]);
    expect(types.slice(-4)).toEqual([
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.incomplete',
    ]);
  });

  it('what dsd cannot do is a 400 naming the field: tools, previous_response_id, json format, bad input', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ input: 'hi', tools: [{ type: 'web_search' }] }, 'tools'],
      [{ input: 'hi', previous_response_id: 'resp_1' }, 'previous_response_id'],
      [{ input: 'hi', text: { format: { type: 'json_schema' } } }, 'text.format'],
      [{ input: [] }, 'input'],
      [{ input: [{ role: 'tool', content: 'x' }] }, 'input[0].role'],
      [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 'input[0].content[0].type'],
      [{}, 'input'],
    ];
    for (const [body, param] of cases) {
      const r = await postJson(`${dsd.baseUrl}/v1/responses`, { model: 'target', ...body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.param).toBe(param);
      expect(r.body.error.type).toBe('invalid_request_error');
    }
    const unknown = await postJson(`${dsd.baseUrl}/v1/responses`, { model: 'nope', input: 'hi' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('model_not_found');
  });
});

describe('Responses output', () => {
  const echo = { instructions: null, maxOutputTokens: null, temperature: 0, topP: 1, metadata: {}, stream: false };
  /** A Response stand-in that keeps what is sent. */
  function fake() {
    const sent: { json?: any; text: string } = { text: '' };
    const res = {
      statusCode: 200,
      json: (b: unknown) => {
        sent.json = b;
        return res;
      },
      write: (t: string) => {
        sent.text += t;
        return true;
      },
    };
    return { res: res as unknown as Response, sent };
  }

  it('a chat completion that stopped by itself is a completed response; one cut by max tokens is incomplete', () => {
    for (const [finish, status] of [
      ['stop', 'completed'],
      ['length', 'incomplete'],
    ]) {
      const { res, sent } = fake();
      speakResponses(res, echo);
      res.json({
        model: 'm',
        choices: [{ message: { content: 'The end.' }, finish_reason: finish }],
        usage: { prompt_tokens: 3, completion_tokens: 4 },
      });
      expect(sent.json.status).toBe(status);
      expect(sent.json.output[0].content[0].text).toBe('The end.');
      expect(sent.json.usage).toMatchObject({ input_tokens: 3, output_tokens: 4, total_tokens: 7 });
    }
  });

  it('error envelopes pass unchanged, and an in-band stream error becomes an error event', () => {
    const { res, sent } = fake();
    speakResponses(res, echo);
    const envelope = { error: { message: 'bad', type: 'invalid_request_error', param: 'input', code: 'x' } };
    res.json(envelope);
    expect(sent.json).toBe(envelope);
    res.write(`data: ${JSON.stringify({ model: 'm', choices: [{ delta: { content: 'Hi' } }] })}\n\n`);
    res.write(`data: ${JSON.stringify(envelope)}\n\n`);
    const events = sent.text.split('\n\n').filter(Boolean);
    expect(events.at(-2)).toContain('event: response.output_text.delta');
    expect(events.at(-1)).toMatch(/^event: error\ndata: .*"message":"bad"/);
  });
});
