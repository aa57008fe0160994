import type { Server } from 'node:http';
import express from 'express';
import type { ChatMessage } from '../backends/types.js';
import { loadConfig, normalizeUrl } from '../config/load-config.js';
import type { VerifierConfig } from '../config/verifier-config.js';
import { loadTargetEngine } from '../engine/engine-choice.js';
import { EngineServer } from '../engine/engine-server.js';
import { connectHttpEngine } from '../engine/http-engine.js';
import type { TargetEngine } from '../engine/types.js';
import { DsdError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { requireApiKey } from '../server/http/auth.js';
import { errorHandler } from '../server/http/error-handler.js';
import { createDsdMiddleware } from '../server/http/middleware.js';
import { listen } from '../server/listen.js';
import { attachLinkServer, type LinkServer, type LinkStats } from './link/link-server.js';
import { registerVerifierMetrics } from './verifier-metrics.js';

/** A running verifier. */
export interface RunningVerifier {
  /** http://host:port (no /v1). */
  url: string;
  server: Server;
  engine: TargetEngine;
  link: LinkServer;
  /**
   * Graceful shutdown (SIGTERM): refuses new sessions and OpenAI requests, tells the edges, lets
   * the generations open now finish for up to `ms`, then stops; edges carry any generation still
   * open on another replica from its committed context.
   */
  drain(ms: number): Promise<void>;
  stop(): Promise<void>;
}

const IN_PROCESS_URL = 'http://in-process.verifier';

function ids(v: unknown, vocabSize: number): number[] {
  if (!Array.isArray(v) || !v.every((t) => Number.isInteger(t) && t >= 0 && t < vocabSize))
    throw new DsdError('invalid_request', `'tokens' must be a list of token ids below ${vocabSize}`, {
      param: 'tokens',
    });
  return v as number[];
}

/** What the edge asks of the verifier over HTTP: description, tokens, the chat template. */
function edgeRoutes(
  engine: TargetEngine,
  config: VerifierConfig,
  linkStats: () => LinkStats | undefined,
): express.Router {
  const router = express.Router();
  const json = express.json({ limit: '8mb', type: () => true });
  const guard: express.RequestHandler[] = config.keys.length > 0 ? [requireApiKey(config.keys)] : [];
  router.get('/dsd/verifier', ...guard, (_req, res) => {
    const i = engine.info;
    res.json({
      version: 1,
      model: i.modelName,
      context_tokens: i.contextTokens,
      bos_id: i.bosId ?? null,
      eos_id: i.eosId ?? null,
      vocab_size: i.vocabSize,
      sequences: i.sequences,
      max_positions: i.maxPositions,
      engine_build: i.build,
      engine: i.engine,
      backend: i.backend,
      device: i.device,
      chat_template: engine.chatTemplate === undefined ? 'ids' : 'text',
      load: engine.load(),
      link: linkStats() ?? null,
    });
  });
  router.post('/tokenize', ...guard, json, async (req, res) => {
    const { content, add_special } = (req.body ?? {}) as { content?: unknown; add_special?: unknown };
    if (typeof content !== 'string')
      throw new DsdError('invalid_request', "'content' must be a string", { param: 'content' });
    res.json({ tokens: await engine.tokenize(content, add_special === true) });
  });
  router.post('/detokenize', ...guard, json, async (req, res) => {
    const tokens = ids((req.body as { tokens?: unknown })?.tokens, engine.info.vocabSize);
    res.json({ content: await engine.detokenize(tokens) });
  });
  router.post('/apply-template', ...guard, json, async (req, res) => {
    const messages = (req.body as { messages?: unknown })?.messages;
    if (!Array.isArray(messages) || !messages.every((m) => typeof m === 'object' && m !== null && 'role' in m))
      throw new DsdError('invalid_request', "'messages' must be a list of messages", { param: 'messages' });
    const chat = messages as ChatMessage[];
    if (engine.chatTemplate === undefined) {
      // A target that templates into ids only (vLLM): the edge gets the ids as the prompt's text-free form.
      res.json({ prompt_ids: await engine.chatPromptIds(chat) });
      return;
    }
    const { text, addSpecial } = await engine.chatTemplate(chat);
    res.json({ prompt: text, add_special: addSpecial });
  });
  return router;
}

/** The target: a GGUF file in-process, or a server on loopback through the edge's adapters. */
function defaultEngine(c: VerifierConfig, logger: Logger): Promise<TargetEngine> {
  if (c.targetUrl === undefined) return loadTargetEngine(c, logger);
  const timeouts = { connectTimeoutMs: 5_000, headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000 };
  return connectHttpEngine(
    { url: normalizeUrl(c.targetUrl) ?? c.targetUrl, kind: 'auto', timeouts, sequences: c.sequences },
    AbortSignal.timeout(30_000),
  );
}

/**
 * Starts `dsd verifier`: loads the target in-process, serves the OpenAI API with it alone (the
 * same generation path as the edge, with no draft), the edge's HTTP helpers, and the link.
 */
export async function startVerifier(
  config: VerifierConfig,
  logger: Logger = createLogger(config.logLevel),
  loadEngine: (c: VerifierConfig, logger: Logger) => Promise<TargetEngine> = defaultEngine,
): Promise<RunningVerifier> {
  const engine = await loadEngine(config, logger);
  logger.info('target engine loaded', { model: engine.info.modelName, ...engine.info });
  if (engine.info.build === 'prebuilt' && engine.info.backend === 'cpu')
    logger.info(
      'the engine runs a prebuilt CPU binary from npm; npm run build:engine builds the native engine over ' +
        'our llama-server build, which evaluates a round’s positions faster (docs/verifier.md)',
    );
  const local = new EngineServer(engine, IN_PROCESS_URL);
  const dsdConfig = loadConfig(
    {},
    {
      target: { urls: [IN_PROCESS_URL], kind: 'verifier' },
      apiKeys: config.keys,
      logLevel: config.logLevel,
      host: config.host,
      port: config.port,
      limits: { maxConcurrency: 1024 },
    },
  );
  const router = createDsdMiddleware({ config: dsdConfig, logger, connect: async () => local });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  let link: LinkServer | undefined;
  registerVerifierMetrics(router.dsd.metrics.registry, engine, () => link?.stats);
  app.use(edgeRoutes(engine, config, () => link?.stats));
  app.use(router);
  app.use((_req, _res, next) => next(new DsdError('not_found', 'no such route on the verifier')));
  app.use(errorHandler(logger));
  const { server, origin: url } = await listen(app, { host: config.host, port: config.port, tls: config.tls });
  link = attachLinkServer(server, {
    engine,
    keys: config.keys,
    maxSessionsPerConnection: config.maxSessionsPerConnection,
    maxFrameBytes: config.maxFrameBytes,
    idleTimeoutMs: config.idleTimeoutMs,
    maxDraftTokens: config.maxDraftTokens,
    logger,
  });
  logger.info('dsd verifier listening', { url, link: `${url.replace(/^http/, 'ws')}/v1/link` });
  const stop = async () => {
    await link.close();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
    await router.close();
    await engine.close();
  };
  return {
    url,
    server,
    engine,
    link,
    drain: async (ms) => {
      router.dsd.draining = true;
      logger.info('verifier draining', { ms, sessions: link.stats.sessions });
      await link.drain(ms);
      await stop();
    },
    stop,
  };
}
