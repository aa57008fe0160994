import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import type { ResponsesEcho } from './responses-request.js';

type Json = Record<string, unknown>;

interface ChatUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  dsd?: unknown;
}

/** The state of one response while its chat completion runs. */
class ResponseState {
  readonly id = `resp_${randomUUID().replaceAll('-', '')}`;
  readonly messageId = `msg_${randomUUID().replaceAll('-', '')}`;
  readonly createdAt = Math.floor(Date.now() / 1000);
  text = '';
  finish: string | null = null;
  usage: ChatUsage | undefined;
  model = '';
  sequence = 0;

  constructor(readonly echo: ResponsesEcho) {}

  message(status: 'in_progress' | 'completed'): Json {
    const content = status === 'completed' ? [this.part()] : [];
    return { type: 'message', id: this.messageId, status, role: 'assistant', content };
  }

  part(): Json {
    return { type: 'output_text', text: this.text, annotations: [], logprobs: [] };
  }

  /** The Response object, as the API returns it and as response.* events carry it. */
  object(status: 'in_progress' | 'completed' | 'incomplete'): Json {
    const done = status !== 'in_progress';
    const u = this.usage;
    return {
      id: this.id,
      object: 'response',
      created_at: this.createdAt,
      status,
      error: null,
      incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
      instructions: this.echo.instructions,
      max_output_tokens: this.echo.maxOutputTokens,
      model: this.model,
      output: done ? [this.message('completed')] : [],
      parallel_tool_calls: false,
      temperature: this.echo.temperature,
      top_p: this.echo.topP,
      tool_choice: 'auto',
      tools: [],
      store: false,
      text: { format: { type: 'text' } },
      truncation: 'disabled',
      metadata: this.echo.metadata,
      usage:
        done && u !== undefined
          ? {
              input_tokens: u.prompt_tokens ?? 0,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens: u.completion_tokens ?? 0,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0),
              ...(u.dsd === undefined ? {} : { dsd: u.dsd }),
            }
          : null,
    };
  }

  finalStatus(): 'completed' | 'incomplete' {
    return this.finish === 'length' ? 'incomplete' : 'completed';
  }

  event(type: string, fields: Json): string {
    const payload = { type, sequence_number: this.sequence++, ...fields };
    return `event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`;
  }
}

/** A chat.completion (non-streamed) as a Response object. */
function fromChatCompletion(state: ResponseState, chat: Json): Json {
  const choice = (chat.choices as Json[] | undefined)?.[0];
  const message = choice?.message as Json | undefined;
  state.text = typeof message?.content === 'string' ? message.content : '';
  state.finish = typeof choice?.finish_reason === 'string' ? choice.finish_reason : null;
  state.usage = chat.usage as ChatUsage | undefined;
  state.model = typeof chat.model === 'string' ? chat.model : '';
  return state.object(state.finalStatus());
}

/** The opening events of a streamed response, once the first chat chunk names the model. */
function opening(state: ResponseState): string {
  const item = state.message('in_progress');
  const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
  return (
    state.event('response.created', { response: state.object('in_progress') }) +
    state.event('response.in_progress', { response: state.object('in_progress') }) +
    state.event('response.output_item.added', { output_index: 0, item }) +
    state.event('response.content_part.added', { item_id: state.messageId, output_index: 0, content_index: 0, part })
  );
}

/** The closing events, at the chat stream's [DONE]. */
function closing(state: ResponseState): string {
  const at = { item_id: state.messageId, output_index: 0, content_index: 0 };
  const status = state.finalStatus();
  return (
    state.event('response.output_text.done', { ...at, text: state.text, logprobs: [] }) +
    state.event('response.content_part.done', { ...at, part: state.part() }) +
    state.event('response.output_item.done', { output_index: 0, item: state.message('completed') }) +
    state.event(status === 'completed' ? 'response.completed' : 'response.incomplete', {
      response: state.object(status),
    })
  );
}

/** One chat SSE event (`data: …`) as the Responses events it stands for. */
function fromChatEvent(state: ResponseState, data: string): string {
  if (data === '[DONE]') return closing(state);
  const chunk = JSON.parse(data) as Json;
  if (chunk.error !== undefined) {
    const error = chunk.error as Json;
    return state.event('error', { code: error.code ?? null, message: error.message ?? '', param: error.param ?? null });
  }
  let out = '';
  if (state.sequence === 0) {
    state.model = typeof chunk.model === 'string' ? chunk.model : '';
    out += opening(state);
  }
  if (chunk.usage !== undefined && chunk.usage !== null) state.usage = chunk.usage as ChatUsage;
  const choice = (chunk.choices as Json[] | undefined)?.[0];
  const delta = (choice?.delta as Json | undefined)?.content;
  if (typeof delta === 'string' && delta !== '') {
    state.text += delta;
    const at = { item_id: state.messageId, output_index: 0, content_index: 0 };
    out += state.event('response.output_text.delta', { ...at, delta, logprobs: [] });
  }
  if (typeof choice?.finish_reason === 'string') state.finish = choice.finish_reason;
  return out;
}

/**
 * Makes `res` speak the Responses API while the chat route writes to it: a chat.completion body
 * becomes a Response object, and chat SSE events become the Responses event sequence (created,
 * in_progress, output item and content part added, text deltas, the done events, completed or
 * incomplete). Error envelopes pass unchanged before the stream starts and as an `error` event
 * inside it. Back-pressure is kept: each write returns what the socket's write returned.
 */
export function speakResponses(res: Response, echo: ResponsesEcho): void {
  const state = new ResponseState(echo);
  const json = res.json.bind(res);
  res.json = (body: unknown) => {
    const chat = body as Json | null;
    if (res.statusCode >= 400 || chat === null || typeof chat !== 'object' || chat.error !== undefined)
      return json(body);
    return json(fromChatCompletion(state, chat));
  };
  const write = res.write.bind(res) as (chunk: string) => boolean;
  let pending = '';
  res.write = ((chunk: unknown) => {
    pending += String(chunk);
    const events = pending.split('\n\n');
    pending = events.pop() ?? '';
    const out = events
      .map((e) => (e.startsWith('data: ') ? fromChatEvent(state, e.slice(6)) : ''))
      .filter(Boolean)
      .join('');
    return out === '' ? true : write(out);
  }) as Response['write'];
}
