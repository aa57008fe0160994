import express, { type Router } from 'express';
import type { Connector } from '../../backends/detect.js';
import { PromptCache } from '../../cache/prompt-cache.js';
import { TokenBytesCache } from '../../cache/token-bytes-cache.js';
import { loadConfigFromProcess } from '../../config/load-config.js';
import type { DsdConfig, DsdOptions } from '../../config/types.js';
import { createLogger, type Logger } from '../../logger.js';
import type { DsdContext } from '../context.js';
import { RoundTrace } from '../generation/round-trace.js';
import { DsdMetrics } from '../metrics.js';
import { servedModelName } from '../model-names.js';
import { Upstreams } from '../upstreams/upstreams.js';
import { Admission } from './admission.js';
import { requireApiKey } from './auth.js';
import { dashboardData } from './dashboard-data.js';
import { DASHBOARD_HTML } from './dashboard-page.js';
import { errorHandler } from './error-handler.js';
import { generationRoute } from './generation-route.js';
import { keyLimits } from './key-limits.js';
import { requestLog } from './request-log.js';
import { traceRequests } from './request-span.js';
import { speakResponses } from './responses-output.js';
import { translateResponsesRequest } from './responses-request.js';

/** A bounded label for an upstream path. */
function operationOf(path: string): string {
  if (path.startsWith('/completion')) return 'completion';
  if (path.startsWith('/v1/completions')) return 'v1_completions';
  if (path.startsWith('/v1/chat')) return 'v1_chat';
  return (
    path
      .replace(/^\//, '')
      .replace(/[^a-z0-9_]/gi, '_')
      .slice(0, 32) || 'root'
  );
}

/** Options of createDsdMiddleware/createApp: configuration overrides plus injectables. */
export interface DsdMiddlewareOptions extends DsdOptions {
  /** A complete configuration; when given, the environment is not read at all. */
  config?: DsdConfig;
  logger?: Logger;
  /** Makes the upstream server objects (the verifier passes its in-process engine). */
  connect?: Connector;
  /** What GET /metrics serves instead of this instance's own registry (a cluster worker: all workers). */
  metricsText?: () => Promise<string>;
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
  const { config: given, logger: givenLogger, connect, metricsText, ...overrides } = options;
  const config = given ?? loadConfigFromProcess(overrides);
  const logger = givenLogger ?? createLogger(config.logLevel);
  const metrics = new DsdMetrics();
  const ctx: DsdContext = {
    config,
    logger,
    upstreams: new Upstreams(config, logger, {
      observe: (o) =>
        metrics.upstreamSeconds.observe(
          { role: o.role, upstream: o.baseUrl, operation: operationOf(o.path), outcome: o.outcome },
          o.ms / 1000,
        ),
      onRetry: (role, upstream) => metrics.retries.inc({ role, upstream }),
      ...(connect === undefined ? {} : { connect }),
    }),
    counters: { speculative: 0, passthrough: 0, draftFallbacks: 0 },
    bytesCache: new TokenBytesCache(undefined, (hit) =>
      metrics.cacheLookups.inc({ cache: 'token_bytes', result: hit ? 'hit' : 'miss' }),
    ),
    promptCache: config.promptCacheEntries > 0 ? new PromptCache(config.promptCacheEntries) : undefined,
    metrics,
    admission: new Admission(config.limits, metrics),
    draining: false,
    trace: config.traceFile === undefined ? undefined : new RoundTrace(config.traceFile),
  };
  metrics.trackLinks(() => ctx.upstreams.links());
  const router = express.Router() as DsdRouter;
  const json = express.json({ limit: config.bodyLimitBytes, type: () => true });
  const named =
    (route: string): express.RequestHandler =>
    (_req, res, next) => {
      res.locals.route = route;
      next();
    };

  router.use(requestLog(logger, metrics));
  router.use(traceRequests());
  router.get('/health', named('health'), (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/ready', named('ready'), async (_req, res) => {
    if (ctx.draining) {
      res.status(503).json({ status: 'draining' });
      return;
    }
    const state = await ctx.upstreams.readiness(AbortSignal.timeout(config.target.timeouts.connectTimeoutMs + 2_000));
    const ready = state.target;
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'unavailable',
      target: state.target,
      targets: state.targets,
      drafts: state.drafts,
      draftBreakers: ctx.upstreams.drafts.states().map((d) => d.state),
    });
  });
  router.get('/metrics', named('metrics'), async (_req, res) => {
    const text = metricsText === undefined ? await metrics.registry.metrics() : await metricsText();
    res.type(metrics.registry.contentType).send(text);
  });
  router.get('/dashboard', named('dashboard'), (_req, res) => {
    res.type('html').send(DASHBOARD_HTML);
  });
  if (config.apiKeys.length > 0) router.use(['/v1', '/dashboard/data'], requireApiKey(config.apiKeys));
  router.get('/dashboard/data', named('dashboard-data'), async (_req, res) => {
    res.json(await dashboardData(ctx));
  });
  if (config.apiKeys.length > 0 && config.keyLimits !== undefined)
    router.use(
      ['/v1/chat/completions', '/v1/completions', '/v1/responses'],
      keyLimits(config.keyLimits, metrics.registry),
    );
  router.get('/v1/models', named('models'), async (_req, res) => {
    const { info } = await ctx.upstreams.target(AbortSignal.timeout(config.target.timeouts.headersTimeoutMs));
    res.json({
      object: 'list',
      data: [
        {
          id: servedModelName(config.models, info.modelId),
          object: 'model',
          created: 0,
          owned_by: 'dsd',
          max_model_len: info.contextTokens,
        },
      ],
    });
  });
  router.post('/v1/chat/completions', named('chat'), json, generationRoute(ctx, 'chat'));
  router.post('/v1/completions', named('completions'), json, generationRoute(ctx, 'completions'));
  const chat = generationRoute(ctx, 'chat');
  router.post('/v1/responses', named('responses'), json, (req, res, next) => {
    const { chatBody, echo } = translateResponsesRequest(req.body);
    req.body = chatBody;
    speakResponses(res, echo);
    return chat(req, res, next);
  });
  router.use(errorHandler(logger));

  Object.defineProperty(router, 'dsd', { value: ctx });
  router.close = async () => {
    await ctx.upstreams.close();
    await ctx.trace?.close();
  };
  return router;
}
