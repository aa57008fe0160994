import express, { type Express } from 'express';
import { notFound } from './error-handler.js';
import { createDsdMiddleware, type DsdMiddlewareOptions, type DsdRouter } from './middleware.js';

/** The standalone dsd app and its router (for `close()` and counters). */
export interface DsdApp {
  app: Express;
  router: DsdRouter;
}

/** Creates the standalone Express app: dsd's routes at the root and OpenAI-style 404s elsewhere. */
export function createApp(options: DsdMiddlewareOptions = {}): DsdApp {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const router = createDsdMiddleware(options);
  app.use(router);
  app.use(notFound);
  return { app, router };
}
