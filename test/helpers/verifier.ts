import { startVerifierProcess, type VerifierProcess } from '../../src/bench/verifier-process.js';
import { loadVerifierConfig, type VerifierConfig } from '../../src/config/verifier-config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningVerifier, startVerifier } from '../../src/verifier/main.js';
import { modelPath } from './llama-server.js';

/** Starts a verifier in this process on a free loopback port with a shared test model. */
export function startTestVerifier(model: string, overrides: Partial<VerifierConfig> = {}): Promise<RunningVerifier> {
  const config = loadVerifierConfig({ DSD_VERIFIER_PORT: '0' }, { modelPath: modelPath(model), ...overrides });
  return startVerifier(config, createLogger(process.env.DSD_TEST_LOG === '1' ? 'debug' : 'silent'));
}

/** A verifier in a child process (the CLI, as deployed), so a test can SIGKILL or SIGTERM it. */
export function spawnVerifier(
  model: string,
  o: { port?: number; flags?: readonly string[]; sequences?: number; netns?: { name: string; host: string } } = {},
): Promise<VerifierProcess> {
  return startVerifierProcess(
    ['--model', modelPath(model), '--sequences', String(o.sequences ?? 2), ...(o.flags ?? [])],
    {
      logLevel: 'silent',
      stderr: 'ignore',
      ...(o.port === undefined ? {} : { port: o.port }),
      ...(o.netns === undefined ? {} : { netns: o.netns }),
    },
  );
}
