import express, { type Router } from 'express';
import { TokenBytesCache } from '../cache/token-bytes-cache.js';
import { loadConfigFromProcess } from '../config/load-config.js';
import type { DsdConfig, DsdOptions } from '../config/types.js';
import { createLogger, type Logger } from '../logger.js';
import { requireApiKey } from './auth.js';
import type { DsdContext } from './context.js';
import { errorHandler } from './error-handler.js';
import { generationRoute } from './generation-route.js';
import { Upstreams } from './upstreams.js';

/** Options of createDsdMiddleware/createApp: configuration overrides plus injectables. */
export interface DsdMiddlewareOptions extends DsdOptions {
  /** A complete configuration; when given, the environment is not read at all. */
  config?: DsdConfig;
  logger?: Logger;
}

/** An Express router serving dsd's routes, with a handle to release its upstream connections. */
export type DsdRouter = Router & {
  /** The shared state of this instance (configuration, upstreams, counters). */
  readonly dsd: DsdContext;
  /** Closes the upstream connection pools. */
  close(): Promise<void>;
};

/**
 * Creates dsd as an Express router that can be mounted at any path of an existing app, e.g.
 * `app.use('/llm', createDsdMiddleware({ target: { urls: ['http://gpu:8000'] } }))`.
 * Options override the `DSD_*` environment.
 */
export function createDsdMiddleware(options: DsdMiddlewareOptions = {}): DsdRouter {
  const { config: given, logger: givenLogger, ...overrides } = options;
  const config = given ?? loadConfigFromProcess(overrides);
  const logger = givenLogger ?? createLogger(config.logLevel);
  const ctx: DsdContext = {
    config,
    logger,
    upstreams: new Upstreams(config, logger),
    counters: { speculative: 0, passthrough: 0, draftFallbacks: 0 },
    bytesCache: new TokenBytesCache(),
  };
  const router = express.Router() as DsdRouter;
  const json = express.json({ limit: config.bodyLimitBytes, type: () => true });

  router.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/ready', async (_req, res) => {
    const state = await ctx.upstreams.readiness(AbortSignal.timeout(config.target.timeouts.connectTimeoutMs + 2_000));
    const ready = state.target;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', target: state.target, drafts: state.drafts });
  });
  if (config.apiKeys.length > 0) router.use('/v1', requireApiKey(config.apiKeys));
  router.get('/v1/models', async (_req, res) => {
    const { info } = await ctx.upstreams.target(AbortSignal.timeout(config.target.timeouts.headersTimeoutMs));
    res.json({ object: 'list', data: [{ id: info.modelId, object: 'model', created: 0, owned_by: 'dsd', max_model_len: info.contextTokens }] });
  });
  router.post('/v1/chat/completions', json, generationRoute(ctx, 'chat'));
  router.post('/v1/completions', json, generationRoute(ctx, 'completions'));
  router.use(errorHandler(logger));

  Object.defineProperty(router, 'dsd', { value: ctx });
  router.close = () => ctx.upstreams.close();
  return router;
}
