/**
 * The one error hierarchy of dsd. Every failure that can reach a client is a DsdError with a stable
 * `code`; the server maps it once to the OpenAI error envelope (see server/error-handler.ts).
 */

/** Stable machine-readable error codes; clients may switch on these. */
export type DsdErrorCode =
  | 'invalid_json'
  | 'invalid_request'
  | 'unsupported_parameter'
  | 'payload_too_large'
  | 'unauthorized'
  | 'model_not_found'
  | 'not_found'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'upstream_error'
  | 'upstream_bad_response'
  | 'vocabulary_mismatch'
  | 'rate_limit_exceeded'
  | 'server_shutting_down'
  | 'internal_error';

/** The OpenAI `error.type` values dsd emits. */
export type OpenAiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'server_error'
  | 'upstream_error'
  | 'rate_limit_error'
  | 'timeout_error';

const STATUS_BY_CODE: Record<DsdErrorCode, number> = {
  invalid_json: 400,
  invalid_request: 400,
  unsupported_parameter: 400,
  payload_too_large: 413,
  unauthorized: 401,
  model_not_found: 404,
  not_found: 404,
  upstream_unavailable: 502,
  upstream_timeout: 504,
  upstream_error: 502,
  upstream_bad_response: 502,
  vocabulary_mismatch: 500,
  rate_limit_exceeded: 429,
  server_shutting_down: 503,
  internal_error: 500,
};

const TYPE_BY_CODE: Record<DsdErrorCode, OpenAiErrorType> = {
  invalid_json: 'invalid_request_error',
  invalid_request: 'invalid_request_error',
  unsupported_parameter: 'invalid_request_error',
  payload_too_large: 'invalid_request_error',
  unauthorized: 'authentication_error',
  model_not_found: 'not_found_error',
  not_found: 'not_found_error',
  upstream_unavailable: 'upstream_error',
  upstream_timeout: 'timeout_error',
  upstream_error: 'upstream_error',
  upstream_bad_response: 'upstream_error',
  vocabulary_mismatch: 'server_error',
  rate_limit_exceeded: 'rate_limit_error',
  server_shutting_down: 'server_error',
  internal_error: 'server_error',
};

/** Options for constructing a DsdError. */
export interface DsdErrorOptions {
  /** The request field at fault, reported as OpenAI's `param`. */
  param?: string;
  /** Overrides the status implied by the code (e.g. an upstream 4xx relayed as is). */
  status?: number;
  /** Sent as Retry-After (seconds) with the error response. */
  retryAfterSeconds?: number;
  cause?: unknown;
}

/** Base class: a failure with a stable code, an HTTP status and an optional offending field. */
export class DsdError extends Error {
  readonly code: DsdErrorCode;
  readonly status: number;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: DsdErrorCode, message: string, options: DsdErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DsdError';
    this.code = code;
    this.status = options.status ?? STATUS_BY_CODE[code];
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The OpenAI `error.type` for this error. */
  get type(): OpenAiErrorType {
    return TYPE_BY_CODE[this.code];
  }
}

/** A client request that fails validation; `param` names the field. */
export class InvalidRequestError extends DsdError {
  constructor(message: string, param?: string) {
    super('invalid_request', message, param === undefined ? {} : { param });
    this.name = 'InvalidRequestError';
  }
}

/** Which upstream role failed; used in messages and to decide fallback. */
export type UpstreamRole = 'target' | 'draft';

/** Options for an UpstreamError. */
export interface UpstreamErrorOptions extends DsdErrorOptions {
  role: UpstreamRole;
  /** The upstream's own HTTP status, when it answered. */
  upstreamStatus?: number;
}

/** A failure talking to a draft or target server. Only target failures ever reach a client. */
export class UpstreamError extends DsdError {
  readonly role: UpstreamRole;
  readonly upstreamStatus: number | null;
  /** The upstream's Retry-After, when it sent one. */
  retryAfterMs: number | undefined;

  constructor(code: DsdErrorCode, message: string, options: UpstreamErrorOptions) {
    super(code, message, options);
    this.name = 'UpstreamError';
    this.role = options.role;
    this.upstreamStatus = options.upstreamStatus ?? null;
  }
}

/** Raised when the client went away; never reported to anyone. */
export class ClientAbortError extends Error {
  constructor() {
    super('client disconnected');
    this.name = 'ClientAbortError';
  }
}

/** The OpenAI error envelope. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** Converts any thrown value to a DsdError, hiding internals of unexpected failures. */
export function toDsdError(err: unknown): DsdError {
  if (err instanceof DsdError) return err;
  return new DsdError('internal_error', 'internal error', { cause: err });
}

/** Builds the OpenAI error envelope for an error. */
export function errorBody(err: DsdError): OpenAiErrorBody {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}
