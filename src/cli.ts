#!/usr/bin/env node
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFromProcess } from './config/load-config.js';
import { DsdError } from './errors.js';
import { createLogger } from './logger.js';
import { runPrimary, runWorker } from './server/cluster.js';
import { startDsd, usageBanner } from './server/main.js';

/** Flags of `dsd serve` and the variables they stand for. */
const FLAGS: Record<string, string> = {
  'target-url': 'DSD_TARGET_URL',
  'target-kind': 'DSD_TARGET_KIND',
  'target-model': 'DSD_TARGET_MODEL',
  'draft-url': 'DSD_DRAFT_URL',
  'draft-kind': 'DSD_DRAFT_KIND',
  'draft-model': 'DSD_DRAFT_MODEL',
  'served-model-name': 'DSD_SERVED_MODEL_NAME',
  'model-aliases': 'DSD_MODEL_ALIASES',
  host: 'DSD_HOST',
  port: 'DSD_PORT',
  'api-key': 'DSD_API_KEY',
  'log-level': 'DSD_LOG_LEVEL',
  window: 'DSD_WINDOW',
  acceptance: 'DSD_ACCEPTANCE',
  'body-limit-bytes': 'DSD_BODY_LIMIT_BYTES',
  workers: 'DSD_WORKERS',
};

const HELP = `dsd — distributed speculative decoding behind an OpenAI-compatible API

Usage:
  dsd serve [flags]     run the proxy (no target URL: embedded demo backends)
  dsd bench --url URL   load-test any OpenAI-compatible endpoint (dsd bench --help)
  dsd sim [--sweep …]   DSD-Si, the edge–cloud speculative decoding simulator (dsd sim --help)
  dsd verifier --model FILE.gguf | --target-url URL  [--host H] [--port P] [--threads N] [--context N]
               [--sequences N] [--gpu auto|cuda|vulkan|cpu] [--gpu-layers N|all] [--drain-ms N]
               [--engine auto|native|node-llama-cpp]
                        the target side: scores rounds in one sequence beside the target
                        (DSD_VERIFIER_MODEL, _HOST, _PORT (8090), _THREADS, _CONTEXT, _SEQUENCES,
                        _GPU, _GPU_LAYERS, _ENGINE; npm run build:engine builds the native engine)
  dsd --help | --version

Flags of serve (each overrides the environment variable beside it):
${Object.entries(FLAGS)
  .map(([flag, env]) => `  --${flag.padEnd(18)} ${env}`)
  .join('\n')}

Other variables: DSD_TARGET_API_KEY, DSD_DRAFT_API_KEY, DSD_API_KEY_FILE, DSD_CA_FILE,
DSD_{TARGET,DRAFT}_{CONNECT,HEADERS,BODY}_TIMEOUT_MS, DSD_WINDOW_MIN, DSD_WINDOW_MAX, DSD_TOP_LOGPROBS,
DSD_DRAFT_AHEAD, DSD_DRAFT_COOLDOWN_MS, DSD_MAX_TOKENS, DSD_MAX_MESSAGES, DSD_MAX_CONCURRENCY,
DSD_MAX_QUEUE, DSD_QUEUE_TIMEOUT_MS, DSD_SHUTDOWN_GRACE_MS, DSD_TARGET_RETRY_ATTEMPTS,
DSD_PROMPT_CACHE_ENTRIES, DSD_DRAFT_SLOT_PINNING, DSD_TARGET_SLOT_SHARING, DSD_LOG_PROMPTS, DSD_TRACE_FILE,
DSD_UPSTREAM_CONNECTIONS, DSD_ACCEPT_ANY_MODEL, DSD_TREE_BRANCHES, DSD_VERIFIER_MODE, PORT.
See README.md.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Starts the OpenTelemetry Node SDK when OTEL_* variables ask for traces. The SDK is not one of
 * dsd's dependencies (users who embed dsd bring their own provider); `npm i @opentelemetry/sdk-node`
 * adds it, and it reads the OTEL_* variables itself (exporter, endpoint, sampler, service name).
 */
async function startOtelSdk(logger: ReturnType<typeof createLogger>): Promise<void> {
  const name = '@opentelemetry/sdk-node';
  try {
    const sdk = (await import(name)) as { NodeSDK: new () => { start(): void } };
    new sdk.NodeSDK().start();
    logger.info('OpenTelemetry tracing on (OTEL_* variables)');
  } catch {
    logger.warn(`OTEL_* variables ask for traces but ${name} is not installed: npm i ${name}`);
  }
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
    strict: true,
  });
  const flagEnv = Object.fromEntries(Object.entries(values).map(([flag, v]) => [FLAGS[flag] as string, v as string]));
  const config = loadConfigFromProcess({}, flagEnv);
  const logger = createLogger(config.logLevel);
  if (config.otelTraces) await startOtelSdk(logger);
  if (cluster.isWorker) {
    const worker = await runWorker(config, logger);
    process.on('SIGTERM', () => worker.stop().then(() => process.exit(0)));
    // Ctrl-C reaches the whole process group: the primary drains the workers with SIGTERM.
    process.on('SIGINT', () => {});
    return;
  }
  const running =
    config.workers > 1 ? await runPrimary(config, logger, config.workers) : await startDsd(config, logger);
  const models = (await (
    await fetch(`${running.baseUrl}/models`, {
      headers: config.apiKeys[0] ? { authorization: `Bearer ${config.apiKeys[0]}` } : {},
    })
  ).json()) as { data?: { id: string }[] };
  const demo = config.target.urls.length === 0;
  process.stdout.write(usageBanner(running.baseUrl, models.data?.[0]?.id ?? 'MODEL', demo));
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function verifier(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      'target-url': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      threads: { type: 'string' },
      context: { type: 'string' },
      sequences: { type: 'string' },
      gpu: { type: 'string' },
      'gpu-layers': { type: 'string' },
      'drain-ms': { type: 'string' },
      engine: { type: 'string' },
    },
    strict: true,
  });
  const { loadVerifierConfig } = await import('./config/verifier-config.js');
  const { startVerifier } = await import('./verifier/main.js');
  const flagEnv = Object.fromEntries(
    Object.entries({
      DSD_VERIFIER_MODEL: values.model,
      DSD_VERIFIER_TARGET_URL: values['target-url'],
      DSD_VERIFIER_HOST: values.host,
      DSD_VERIFIER_PORT: values.port,
      DSD_VERIFIER_THREADS: values.threads,
      DSD_VERIFIER_CONTEXT: values.context,
      DSD_VERIFIER_SEQUENCES: values.sequences,
      DSD_VERIFIER_GPU: values.gpu,
      DSD_VERIFIER_GPU_LAYERS: values['gpu-layers'],
      DSD_VERIFIER_DRAIN_MS: values['drain-ms'],
      DSD_VERIFIER_ENGINE: values.engine,
    }).filter(([, v]) => v !== undefined),
  );
  const config = loadVerifierConfig({ ...process.env, ...flagEnv });
  const logger = createLogger(config.logLevel);
  const running = await startVerifier(config, logger);
  process.stdout.write(
    `dsd verifier: ${running.engine.info.modelName} at ${running.url} (OpenAI API at ${running.url}/v1); ` +
      `point an edge at it with DSD_TARGET_URL=${running.url}\n`,
  );
  // SIGTERM drains (edges move their generations elsewhere); a second signal stops at once.
  const shutdown = (graceful: boolean) => {
    (graceful ? running.drain(config.drainMs) : running.stop()).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => {
    process.once('SIGTERM', () => shutdown(false));
    shutdown(true);
  });
  process.once('SIGINT', () => shutdown(false));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (command === 'serve') return serve(rest);
  if (command === 'verifier') return verifier(rest);
  if (command === 'sim') {
    const { simCommand } = await import('./sim/sim-command.js');
    await simCommand(rest);
    return;
  }
  if (command === 'bench') {
    const { benchCommand } = await import('./bench/bench-command.js');
    await benchCommand(rest);
    return;
  }
  throw new Error(`unknown command '${command}' (try dsd --help)`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`dsd: ${err.message}\n`);
  else if (err instanceof DsdError) process.stderr.write(`dsd: cannot start: ${err.message}\n`);
  else process.stderr.write(`dsd: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
