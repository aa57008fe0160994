import type { ChatMessage, OpenAiRoute } from '../../backends/types.js';
import { InvalidRequestError } from '../../errors.js';
import type { GenerationRequest, PromptInput, SpeculationControl } from '../request-types.js';

type Body = Record<string, unknown>;

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
/** Fields whose effect the engine cannot reproduce token by token; such requests pass through. */
const PASSTHROUGH_FIELDS = [
  'tools',
  'functions',
  'tool_choice',
  'response_format',
  'logit_bias',
  'echo',
  'best_of',
  'suffix',
  'guided_json',
  'guided_regex',
  'guided_choice',
  'grammar',
];
const MAX_STOP_STRINGS = 16;

function isRecord(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** Reads an optional number within [min, max]. */
function num(body: Body, field: string, min: number, max: number): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new InvalidRequestError(`'${field}' must be a number, got ${typeName(v)}`, field);
  if (v < min || v > max)
    throw new InvalidRequestError(`'${field}' must be between ${min} and ${max}, got ${v}`, field);
  return v;
}

/** Reads an optional integer within [min, max]. */
function int(body: Body, field: string, min: number, max: number): number | undefined {
  const v = num(body, field, min, max);
  if (v !== undefined && !Number.isInteger(v))
    throw new InvalidRequestError(`'${field}' must be an integer, got ${v}`, field);
  return v;
}

function bool(body: Body, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new InvalidRequestError(`'${field}' must be a boolean, got ${typeName(v)}`, field);
  return v;
}

function isTokenIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t) && (t as number) >= 0);
}

function parseMessages(body: Body): ChatMessage[] {
  const messages = body.messages;
  if (messages === undefined) throw new InvalidRequestError("'messages' is required", 'messages');
  if (!Array.isArray(messages))
    throw new InvalidRequestError(`'messages' must be an array, got ${typeName(messages)}`, 'messages');
  if (messages.length === 0) throw new InvalidRequestError("'messages' must contain at least one message", 'messages');
  messages.forEach((m: unknown, i) => {
    const param = `messages[${i}]`;
    if (!isRecord(m)) throw new InvalidRequestError(`'${param}' must be an object`, param);
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) {
      throw new InvalidRequestError(`'${param}.role' must be one of ${[...ROLES].join(', ')}`, `${param}.role`);
    }
    const c = m.content;
    const contentOk =
      typeof c === 'string' || Array.isArray(c) || (c === null && (m.role === 'assistant' || m.role === 'tool'));
    if (!contentOk && !(c === undefined && m.role === 'assistant')) {
      throw new InvalidRequestError(
        `'${param}.content' must be a string or an array of content parts`,
        `${param}.content`,
      );
    }
  });
  return messages as ChatMessage[];
}

function parsePrompt(body: Body): PromptInput | { kind: 'batch' } {
  const p = body.prompt;
  if (p === undefined) throw new InvalidRequestError("'prompt' is required", 'prompt');
  if (typeof p === 'string') return { kind: 'text', text: p };
  if (isTokenIds(p)) return { kind: 'ids', ids: p };
  if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || isTokenIds(x))) {
    if (p.length === 1)
      return typeof p[0] === 'string' ? { kind: 'text', text: p[0] } : { kind: 'ids', ids: p[0] as number[] };
    return { kind: 'batch' };
  }
  throw new InvalidRequestError("'prompt' must be a string, an array of strings, or token ids", 'prompt');
}

function parseStop(body: Body): string[] {
  const s = body.stop;
  if (s === undefined || s === null) return [];
  const list = typeof s === 'string' ? [s] : s;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string' && x.length > 0)) {
    throw new InvalidRequestError("'stop' must be a non-empty string or an array of non-empty strings", 'stop');
  }
  if (list.length > MAX_STOP_STRINGS)
    throw new InvalidRequestError(`'stop' may hold at most ${MAX_STOP_STRINGS} strings`, 'stop');
  return list as string[];
}

function parseStopTokenIds(body: Body): number[] {
  const s = body.stop_token_ids;
  if (s === undefined || s === null) return [];
  if (!Array.isArray(s) || !s.every((t) => Number.isInteger(t) && t >= 0)) {
    throw new InvalidRequestError("'stop_token_ids' must be an array of token ids", 'stop_token_ids');
  }
  return s as number[];
}

function parseLogprobs(body: Body, route: OpenAiRoute): number | undefined {
  if (route === 'chat') {
    if (bool(body, 'logprobs') !== true) {
      if (body.top_logprobs !== undefined && body.top_logprobs !== null) int(body, 'top_logprobs', 0, 20);
      return undefined;
    }
    return int(body, 'top_logprobs', 0, 20) ?? 0;
  }
  return int(body, 'logprobs', 0, 20);
}

/** Reads the `dsd` body extension and `x-dsd-*` headers; headers win. */
export function parseSpeculationControl(
  body: Body,
  headers: Record<string, string | string[] | undefined>,
): SpeculationControl {
  const control: SpeculationControl = {};
  const ext = body.dsd;
  if (ext !== undefined && ext !== null) {
    if (!isRecord(ext)) throw new InvalidRequestError("'dsd' must be an object", 'dsd');
    const enabled = bool(ext, 'speculative');
    const window = int(ext, 'window', 0, 1024);
    if (enabled !== undefined) control.enabled = enabled;
    if (window !== undefined) control.window = window;
  }
  const header = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const spec = header('x-dsd-speculative');
  if (spec !== undefined) {
    if (!['on', 'off', 'true', 'false'].includes(spec))
      throw new InvalidRequestError("header 'x-dsd-speculative' must be on or off", 'x-dsd-speculative');
    control.enabled = spec === 'on' || spec === 'true';
  }
  const window = header('x-dsd-window');
  if (window !== undefined) {
    if (!/^\d{1,4}$/.test(window))
      throw new InvalidRequestError("header 'x-dsd-window' must be a non-negative integer", 'x-dsd-window');
    control.window = Number(window);
  }
  return control;
}

function passthroughReason(body: Body, n: number, input: PromptInput | { kind: 'batch' }): string | undefined {
  if (n > 1) return 'n > 1';
  if (input.kind === 'batch') return 'several prompts';
  const field = PASSTHROUGH_FIELDS.find((f) => body[f] !== undefined && body[f] !== null);
  if (field !== undefined) return field;
  if ((body.presence_penalty ?? 0) !== 0 || (body.frequency_penalty ?? 0) !== 0) return 'penalties';
  if ((body.repetition_penalty ?? 1) !== 1) return 'penalties';
  return undefined;
}

/**
 * Validates an OpenAI chat or completions body. Throws InvalidRequestError naming the field;
 * the returned request says whether the speculative engine can serve it exactly.
 */
export function validateGenerationRequest(
  route: OpenAiRoute,
  raw: unknown,
  headers: Record<string, string | string[] | undefined> = {},
  limits: { maxTokens: number; maxMessages: number } = { maxTokens: 1e9, maxMessages: 1e9 },
): GenerationRequest {
  if (!isRecord(raw)) throw new InvalidRequestError('request body must be a JSON object');
  const body = raw;
  if (typeof body.model !== 'string' || body.model === '')
    throw new InvalidRequestError("'model' is required and must be a string", 'model');
  const parsed = route === 'chat' ? { kind: 'messages' as const, messages: parseMessages(body) } : parsePrompt(body);
  if (parsed.kind === 'messages' && parsed.messages.length > limits.maxMessages) {
    throw new InvalidRequestError(`'messages' may hold at most ${limits.maxMessages} messages`, 'messages');
  }
  const maxTokens =
    int(body, 'max_completion_tokens', 1, limits.maxTokens) ?? int(body, 'max_tokens', 1, limits.maxTokens);
  const n = int(body, 'n', 1, 128) ?? 1;
  const stream = bool(body, 'stream') ?? false;
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isRecord(streamOptions)) {
    throw new InvalidRequestError("'stream_options' must be an object", 'stream_options');
  }
  num(body, 'presence_penalty', -2, 2);
  num(body, 'frequency_penalty', -2, 2);
  const { dsd: _extension, cache_salt: _salt, ...upstreamBody } = body;
  const request: GenerationRequest = {
    route,
    model: body.model,
    input: parsed.kind === 'batch' ? { kind: 'text', text: '' } : parsed,
    maxTokens,
    temperature: num(body, 'temperature', 0, 2) ?? 1,
    topP: num(body, 'top_p', 0, 1) ?? 1,
    topK: Math.max(0, int(body, 'top_k', -1, 1e6) ?? 0),
    minP: num(body, 'min_p', 0, 1) ?? 0,
    seed: int(body, 'seed', -(2 ** 53) + 1, 2 ** 53 - 1),
    stop: parseStop(body),
    stopTokenIds: parseStopTokenIds(body),
    stream,
    includeUsage: stream && isRecord(streamOptions) && streamOptions.include_usage === true,
    logprobs: parseLogprobs(body, route),
    passthroughReason: passthroughReason(body, n, parsed),
    speculation: parseSpeculationControl(body, headers),
    upstreamBody,
    cacheScope: '',
  };
  if (request.topP === 0) throw new InvalidRequestError("'top_p' must be greater than 0", 'top_p');
  return request;
}
