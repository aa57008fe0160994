import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, pinned } from './llama-process.js';
import { runSetupScript } from './setup-script.js';

/**
 * Builds node-llama-cpp's binding from its bundled source once (scripts/build-engine.sh, cached)
 * and installs it, so verifiers started after it with `--engine node-llama-cpp` evaluate with it.
 */
export function buildEngine(log?: (line: string) => void): Promise<string> {
  const script = fileURLToPath(new URL('../../scripts/build-engine.sh', import.meta.url));
  return runSetupScript(script, [], log === undefined ? {} : { log });
}

/**
 * Builds the native engine's shim for `variants` once (scripts/build-native-engine.sh, cached;
 * `cpu` builds llama-server first when it is not there), so verifiers started after it use it.
 */
export function buildNativeEngine(
  variants: readonly string[] = ['cpu'],
  log?: (line: string) => void,
): Promise<string> {
  const script = fileURLToPath(new URL('../../scripts/build-native-engine.sh', import.meta.url));
  return runSetupScript(script, [...variants], log === undefined ? {} : { log });
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
  o: {
    logLevel?: string;
    stderr?: 'inherit' | 'ignore';
    cpus?: string | undefined;
    port?: number;
    /** A network namespace to run it in (`ip netns exec`), listening on `host` there. */
    netns?: { name: string; host: string };
  } = {},
): Promise<VerifierProcess> {
  // A given port: a restart where the edges expect the replica to come back.
  const port = o.port ?? (await freePort());
  const cli = fileURLToPath(new URL('../cli.ts', import.meta.url));
  const host = o.netns?.host ?? '127.0.0.1';
  const argv = ['--import', 'tsx', cli, 'verifier', '--host', host, '--port', String(port), ...flags];
  const [command, args] = pinned(o.cpus, process.execPath, argv);
  const inNs = (name: string): [string, string[]] => ['ip', ['netns', 'exec', name, command, ...args]];
  const [cmd, cmdArgs] = o.netns === undefined ? [command, args] : inNs(o.netns.name);
  const child = spawn(cmd, cmdArgs, {
    stdio: ['ignore', 'ignore', o.stderr ?? 'inherit'],
    env: { ...process.env, DSD_LOG_LEVEL: o.logLevel ?? 'warn' },
  });
  const url = `http://${host}:${port}`;
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
