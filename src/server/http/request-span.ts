import type { RequestHandler } from 'express';
import { endRequestSpan, startRequestSpan, tracerRegistered } from '../../tracing.js';

/**
 * A server span per request (a child of the client's `traceparent`), active while the request is
 * served so that upstream calls and speculative rounds become its children; it ends when the
 * response closes, with the status, route, mode and generated tokens.
 */
export function traceRequests(): RequestHandler {
  return (req, res, next) => {
    if (!tracerRegistered()) return next();
    const { span, run } = startRequestSpan(`${req.method} ${req.path}`, req.headers, {
      'http.request.method': req.method,
      'url.path': req.originalUrl,
    });
    res.once('close', () => {
      const summary = (res.locals.summary ?? {}) as { mode?: string; completionTokens?: number };
      endRequestSpan(span, res.statusCode, {
        'http.route': String(res.locals.route ?? ''),
        'dsd.mode': summary.mode ?? '',
        'dsd.completion_tokens': summary.completionTokens ?? 0,
      });
    });
    run(next);
  };
}
