import { InvalidRequestError } from '../../errors.js';

/** What the Responses API request asked for that its response echoes back. */
export interface ResponsesEcho {
  instructions: string | null;
  maxOutputTokens: number | null;
  temperature: number;
  topP: number;
  metadata: Record<string, string>;
  stream: boolean;
}

/** A Responses API request turned into a chat completions body (served like chat). */
export interface ResponsesTranslation {
  chatBody: Record<string, unknown>;
  echo: ResponsesEcho;
}

/** Fields dsd cannot honour; each gets a 400 naming it rather than being silently ignored. */
const UNSUPPORTED: Record<string, string> = {
  previous_response_id: 'dsd does not store responses (store: false); send the whole conversation as input',
  conversation: 'dsd does not store conversations; send the whole conversation as input',
  background: 'background responses are not supported',
  prompt: 'stored prompt templates are not supported',
  include: "'include' is not supported",
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Text of a message's content: a string, or input_text/output_text parts. */
function contentText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new InvalidRequestError(`'${param}' must be a string or an array of parts`, param);
  return content
    .map((part: unknown, j) => {
      const p = `${param}[${j}]`;
      if (!isRecord(part)) throw new InvalidRequestError(`'${p}' must be an object`, p);
      if ((part.type === 'input_text' || part.type === 'output_text') && typeof part.text === 'string')
        return part.text;
      throw new InvalidRequestError(`'${p}': only input_text and output_text parts are supported`, `${p}.type`);
    })
    .join('');
}

const ROLES = new Set(['user', 'assistant', 'system', 'developer']);

/** `input` (a string or a list of message items) as chat messages. */
function inputMessages(input: unknown): { role: string; content: string }[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0)
    throw new InvalidRequestError("'input' must be a string or a non-empty array of messages", 'input');
  return input.map((item: unknown, i) => {
    const param = `input[${i}]`;
    if (!isRecord(item)) throw new InvalidRequestError(`'${param}' must be an object`, param);
    if (item.type !== undefined && item.type !== 'message')
      throw new InvalidRequestError(`'${param}': items of type ${JSON.stringify(item.type)} are not supported`, param);
    if (typeof item.role !== 'string' || !ROLES.has(item.role))
      throw new InvalidRequestError(`'${param}.role' must be user, assistant, system or developer`, `${param}.role`);
    // Chat templates know "system"; the Responses API's "developer" means the same to them.
    const role = item.role === 'developer' ? 'system' : item.role;
    return { role, content: contentText(item.content, `${param}.content`) };
  });
}

function checkTools(body: Record<string, unknown>): void {
  const tools = body.tools;
  if (tools !== undefined && !(Array.isArray(tools) && tools.length === 0))
    throw new InvalidRequestError('tools (built-in or function) are not supported by dsd', 'tools');
  const format = isRecord(body.text) && isRecord(body.text.format) ? body.text.format.type : undefined;
  if (format !== undefined && format !== 'text')
    throw new InvalidRequestError(`text.format ${JSON.stringify(format)} is not supported; only "text"`, 'text.format');
}

/**
 * Validates a `POST /v1/responses` body and translates it to chat completions: `instructions`
 * becomes a leading system message, `max_output_tokens` becomes `max_tokens`, sampling fields pass
 * as they are (chat validation then checks them). Every field dsd cannot honour is a 400.
 */
export function translateResponsesRequest(body: unknown): ResponsesTranslation {
  if (!isRecord(body)) throw new InvalidRequestError('the request body must be a JSON object', undefined);
  for (const [field, why] of Object.entries(UNSUPPORTED))
    if (body[field] !== undefined && body[field] !== null) throw new InvalidRequestError(why, field);
  checkTools(body);
  if (body.input === undefined) throw new InvalidRequestError("'input' is required", 'input');
  const instructions = body.instructions ?? null;
  if (instructions !== null && typeof instructions !== 'string')
    throw new InvalidRequestError("'instructions' must be a string", 'instructions');
  const metadata = body.metadata ?? {};
  if (!isRecord(metadata) || !Object.values(metadata).every((v) => typeof v === 'string'))
    throw new InvalidRequestError("'metadata' must map strings to strings", 'metadata');
  const messages = [
    ...(instructions === null ? [] : [{ role: 'system', content: instructions }]),
    ...inputMessages(body.input),
  ];
  const chatBody: Record<string, unknown> = { model: body.model, messages };
  for (const [from, to] of [
    ['max_output_tokens', 'max_tokens'],
    ['temperature', 'temperature'],
    ['top_p', 'top_p'],
    ['stream', 'stream'],
    ['seed', 'seed'],
    ['dsd', 'dsd'],
  ] as const)
    if (body[from] !== undefined && body[from] !== null) chatBody[to] = body[from];
  // The usage chunk closes a stream's response.completed event.
  if (body.stream === true) chatBody.stream_options = { include_usage: true };
  const max = body.max_output_tokens;
  return {
    chatBody,
    echo: {
      instructions,
      maxOutputTokens: typeof max === 'number' ? max : null,
      temperature: typeof body.temperature === 'number' ? body.temperature : 1,
      topP: typeof body.top_p === 'number' ? body.top_p : 1,
      metadata: metadata as Record<string, string>,
      stream: body.stream === true,
    },
  };
}
