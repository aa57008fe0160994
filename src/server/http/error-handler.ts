import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ClientAbortError, DsdError, errorBody, toDsdError } from '../../errors.js';
import type { Logger } from '../../logger.js';

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

/** Maps body-parser failures (bad JSON, too large) into the error hierarchy. */
function fromBodyParser(err: unknown): DsdError | undefined {
  const e = err as BodyParserError | null;
  switch (e?.type) {
    case 'entity.parse.failed':
      return new DsdError('invalid_json', 'request body is not valid JSON');
    case 'entity.too.large':
      return new DsdError('payload_too_large', `request body is larger than the limit of ${e.limit ?? '?'} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new DsdError('invalid_request', 'unsupported request body encoding', { status: 415 });
    case 'request.aborted':
      return new DsdError('invalid_request', 'request body was not received in full');
    default:
      return undefined;
  }
}

/** The single place where errors become OpenAI envelopes. */
export function errorHandler(fallbackLogger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (err instanceof ClientAbortError) return;
    const logger = (res.locals.logger as Logger | undefined) ?? fallbackLogger;
    const dsdError = fromBodyParser(err) ?? toDsdError(err);
    const fields = { code: dsdError.code, status: dsdError.status, path: req.path };
    res.locals.errorCode = dsdError.code;
    if (dsdError.status >= 500) logger.warn(dsdError.message, { ...fields, cause: causeOf(dsdError) });
    else logger.debug(dsdError.message, fields);
    if (res.headersSent) {
      // Streaming has begun: the SSE writer reports errors itself; anything else can only be cut.
      if (!res.writableEnded) res.end();
      return;
    }
    if (dsdError.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(dsdError.retryAfterSeconds));
    res.status(dsdError.status).json(errorBody(dsdError));
  };
}

function causeOf(err: DsdError): string | undefined {
  const cause = err.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
}

/** 404 in the OpenAI envelope for unknown paths of the standalone app. */
export const notFound: RequestHandler = (req, res) => {
  const err = new DsdError('not_found', `no route for ${req.method} ${req.path}`);
  res.status(404).json(errorBody(err));
};
