import type { Connector } from '../backends/detect.js';
import { connectServer } from '../backends/detect.js';
import type { DsdConfig } from '../config/types.js';
import { loadTargetEngine } from '../engine/engine-choice.js';
import { EngineServer } from '../engine/engine-server.js';
import type { Logger } from '../logger.js';

/** The draft pool's name for the draft in dsd's own process. */
export const EMBEDDED_DRAFT_URL = 'http://in-process.draft';

/** The edge's embedded draft: its config with the draft first in the pool, the connector, and close. */
export interface EmbeddedDraft {
  config: DsdConfig;
  connect: Connector;
  close(): Promise<void>;
}

/**
 * Loads `DSD_DRAFT_MODEL=FILE.gguf` in this process (the native engine when built, on the CPU:
 * proposals of several generations, and a tree's branches, are sequences of one batch) and puts it
 * first in the draft pool, where failover, breakers and the vocabulary check treat it as any draft.
 */
export async function loadEmbeddedDraft(config: DsdConfig, logger: Logger): Promise<EmbeddedDraft | undefined> {
  const d = config.embeddedDraft;
  if (d === undefined) return undefined;
  const engine = await loadTargetEngine(
    {
      modelPath: d.modelPath,
      threads: d.threads,
      contextTokens: undefined,
      sequences: d.sequences,
      engine: 'auto',
      gpu: 'cpu',
      gpuLayers: 0,
      cacheDir: d.cacheDir,
      logLevel: config.logLevel,
    },
    logger,
  );
  logger.info('embedded draft loaded', { model: engine.info.modelName, engine: engine.info.engine });
  const server = new EngineServer(engine, EMBEDDED_DRAFT_URL, 'draft');
  return {
    config: { ...config, draft: { ...config.draft, urls: [EMBEDDED_DRAFT_URL, ...config.draft.urls] } },
    connect: (o, signal) => (o.url === EMBEDDED_DRAFT_URL ? Promise.resolve(server) : connectServer(o, signal)),
    close: () => engine.close(),
  };
}
