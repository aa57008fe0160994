import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../../logger.js';
import type { DsdMetrics } from '../metrics.js';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Per request: a request id (the client's `x-request-id` when it is safe to echo, else a new
 * one), echoed as a response header and bound to a child logger; when the response ends, one
 * summary line (never prompt text) and the HTTP metrics.
 */
export function requestLog(logger: Logger, metrics: DsdMetrics): RequestHandler {
  return (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', requestId);
    res.locals.requestId = requestId;
    res.locals.logger = logger.child({ requestId });
    const started = performance.now();
    res.on('close', () => {
      const route = typeof res.locals.route === 'string' ? res.locals.route : 'other';
      const status = res.writableFinished ? String(res.statusCode) : 'client_closed';
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({ route, status });
      metrics.requestSeconds.observe({ route, status }, seconds);
      if (route === 'health' || route === 'ready' || route === 'metrics') return;
      (res.locals.logger as Logger).info('request', {
        method: req.method,
        path: req.originalUrl.split('?')[0],
        status: res.writableFinished ? res.statusCode : 'client closed',
        durationMs: Math.round(seconds * 10_000) / 10,
        ...(res.locals.summary as Record<string, unknown> | undefined),
        ...(res.locals.errorCode === undefined ? {} : { error: res.locals.errorCode }),
      });
    });
    next();
  };
}
