import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './llama-process.js';
import { runSetupScript } from './setup-script.js';

/**
 * Builds node-llama-cpp's binding from its bundled source once (scripts/build-engine.sh, cached)
 * and installs it, so verifiers started after it evaluate with it; resolves with where it is.
 */
export function buildEngine(log?: (line: string) => void): Promise<string> {
  const script = fileURLToPath(new URL('../../scripts/build-engine.sh', import.meta.url));
  return runSetupScript(script, [], log === undefined ? {} : { log });
}

/** A `dsd verifier` in its own process on a loopback port. */
export interface VerifierProcess {
  url: string;
  child: ChildProcess;
}

/**
 * Starts `dsd verifier` as deployed, in a child process (through tsx, from the source), and waits
 * until /health answers. Benchmarks keep its engine off their own event loop; tests can SIGKILL it.
 */
export async function startVerifierProcess(
  flags: readonly string[],
  o: { logLevel?: string; stderr?: 'inherit' | 'ignore' } = {},
): Promise<VerifierProcess> {
  const port = await freePort();
  const cli = fileURLToPath(new URL('../cli.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'verifier', '--port', String(port), ...flags], {
    stdio: ['ignore', 'ignore', o.stderr ?? 'inherit'],
    env: { ...process.env, DSD_LOG_LEVEL: o.logLevel ?? 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600 && child.exitCode === null; i++) {
    const up = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { url, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error('the verifier process did not start');
}
