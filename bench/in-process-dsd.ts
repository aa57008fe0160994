import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config/load-config.js';
import type { DsdOptions } from '../src/config/types.js';
import { createLogger } from '../src/logger.js';
import { loadEmbeddedDraft } from '../src/server/embedded-draft.js';
import { createApp } from '../src/server/http/app.js';
import type { DsdRouter } from '../src/server/http/middleware.js';

/** A dsd app listening on loopback inside the benchmark process. */
export interface InProcessDsd {
  url: string;
  router: DsdRouter;
  close(): Promise<void>;
}

/**
 * Starts dsd with an empty environment plus `options`, silent, on a free loopback port (with its
 * embedded draft in this process when DSD_DRAFT_MODEL names a GGUF file).
 */
export async function startInProcessDsd(options: DsdOptions, env: Record<string, string> = {}): Promise<InProcessDsd> {
  const logger = createLogger('silent');
  const config = loadConfig(env, options);
  const embedded = await loadEmbeddedDraft(config, logger);
  const { app, router } = createApp({
    config: embedded?.config ?? config,
    logger,
    ...(embedded === undefined ? {} : { connect: embedded.connect }),
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    router,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await router.close();
      await embedded?.close();
    },
  };
}
