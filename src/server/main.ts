import type { Server } from 'node:http';
import type { DsdConfig } from '../config/types.js';
import { type DemoBackends, startDemoBackends } from '../demo/demo-backends.js';
import { createLogger, type Logger } from '../logger.js';
import { loadEmbeddedDraft } from './embedded-draft.js';
import { createApp } from './http/app.js';
import type { DsdMiddlewareOptions, DsdRouter } from './http/middleware.js';
import { listen } from './listen.js';

/** A running dsd server. */
export interface RunningDsd {
  baseUrl: string;
  server: Server;
  router: DsdRouter;
  demo: DemoBackends | undefined;
  /** Stops accepting, lets in-flight requests finish up to `graceMs`, then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts dsd: demo backends when no target is configured, the app, and the listener. */
export async function startDsd(
  config: DsdConfig,
  logger: Logger = createLogger(config.logLevel),
  extra: Pick<DsdMiddlewareOptions, 'metricsText'> = {},
): Promise<RunningDsd> {
  let demo: DemoBackends | undefined;
  let effective = config;
  if (config.target.urls.length === 0) {
    demo = await startDemoBackends();
    effective = {
      ...config,
      target: { ...config.target, urls: [demo.target.url], kind: 'llamacpp' },
      draft:
        config.draft.urls.length > 0 ? config.draft : { ...config.draft, urls: [demo.draft.url], kind: 'llamacpp' },
    };
    logger.warn(
      'DSD_TARGET_URL is not set: serving the embedded DEMO backends (small n-gram models trained on a ' +
        'bundled text, not a real LLM)',
      {
        demoTarget: demo.target.url,
        demoDraft: demo.draft.url,
      },
    );
  }
  const embedded = await loadEmbeddedDraft(effective, logger);
  if (embedded !== undefined) effective = embedded.config;
  const { app, router } = createApp({
    config: effective,
    logger,
    ...extra,
    ...(embedded === undefined ? {} : { connect: embedded.connect }),
  });
  try {
    const target = await router.dsd.upstreams.target(
      AbortSignal.timeout(effective.target.timeouts.connectTimeoutMs + effective.target.timeouts.headersTimeoutMs),
    );
    logger.info('target ready', { model: target.info.modelId, kind: target.info.kind });
    const { unreachable } = await router.dsd.upstreams.verifyDrafts(
      AbortSignal.timeout(effective.draft.timeouts.connectTimeoutMs + effective.draft.timeouts.headersTimeoutMs * 4),
    );
    for (const url of unreachable)
      logger.warn('draft unreachable at startup; requests go to the target alone until it answers', { draft: url });
  } catch (err) {
    await router.close();
    await demo?.close();
    await embedded?.close();
    throw err;
  }
  const { server, origin } = await listen(app, { host: effective.host, port: effective.port, tls: effective.tls });
  const baseUrl = `${origin}/v1`;
  logger.info('dsd listening', { baseUrl });

  const stop = async (graceMs = effective.shutdownGraceMs) => {
    // Drain: /ready turns 503 and new generation requests are refused while in-flight ones finish.
    router.dsd.draining = true;
    const closed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (router.dsd.admission.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    if (router.dsd.admission.inFlight > 0)
      logger.warn('grace period over; closing remaining connections', { inFlight: router.dsd.admission.inFlight });
    server.closeAllConnections();
    await closed;
    await router.close();
    await demo?.close();
    await embedded?.close();
  };
  return { baseUrl, server, router, demo, stop };
}

/** Prints how to call a running dsd (stdout, for humans). */
export function usageBanner(baseUrl: string, model: string, demo: boolean): string {
  return [
    '',
    `dsd is serving an OpenAI-compatible API at ` +
      `${baseUrl}${demo ? '  (DEMO backends: set DSD_TARGET_URL for a real model)' : ''}`,
    '',
    'Try it:',
    `  curl ${baseUrl}/chat/completions -H 'content-type: application/json' \\`,
    `    -d '{"model":"${model}","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":64}'`,
    '',
    'Or with the OpenAI SDK:',
    `  const client = new OpenAI({ baseURL: '${baseUrl}', apiKey: process.env.DSD_API_KEY ?? 'unused' });`,
    '',
  ].join('\n');
}
