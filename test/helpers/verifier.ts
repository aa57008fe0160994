import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadVerifierConfig, type VerifierConfig } from '../../src/config/verifier-config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningVerifier, startVerifier } from '../../src/verifier/main.js';
import { freePort, modelPath } from './llama-server.js';

/** Starts a verifier in this process on a free loopback port with a shared test model. */
export function startTestVerifier(model: string, overrides: Partial<VerifierConfig> = {}): Promise<RunningVerifier> {
  const config = loadVerifierConfig({ DSD_VERIFIER_PORT: '0' }, { modelPath: modelPath(model), ...overrides });
  return startVerifier(config, createLogger(process.env.DSD_TEST_LOG === '1' ? 'debug' : 'silent'));
}

/** A verifier in a child process (the CLI, as deployed), so a test can SIGKILL it. */
export async function spawnVerifier(model: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', cli, 'verifier', '--model', modelPath(model), '--port', String(port), '--sequences', '2'],
    { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, DSD_LOG_LEVEL: 'silent' } },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) break;
    if (
      await fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { url, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('the verifier process did not start');
}
