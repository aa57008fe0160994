import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { runSetupScript } from './setup-script.js';

/** A llama-server process on a loopback port. */
export interface LlamaProcess {
  url: string;
  pid: number;
  alias: string;
  stop(): Promise<void>;
}

/** Options of a llama-server process. */
export interface LlamaProcessOptions {
  bin: string;
  modelPath: string;
  alias: string;
  slots?: number;
  /** Total context over all slots (each slot gets ctx / slots); default 512 per slot. */
  ctx?: number;
  threads?: number;
  /** A fixed port (a restart after a kill comes back where clients expect it); default: a free one. */
  port?: number;
  extraArgs?: string[];
  /** CPUs the server may run on (`taskset -c` syntax), as on a machine of its own. */
  cpus?: string | undefined;
}

/** A command and its arguments run on `cpus` only (taskset), or as they are. */
export function pinned(cpus: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  return cpus === undefined ? [command, [...args]] : ['taskset', ['-c', cpus, command, ...args]];
}

/** Pins this process (every thread) to `cpus`, as the edge of a two-machine setup. */
export function pinSelf(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

/** A free loopback port (closed again before use; good enough on a test or bench machine). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

/**
 * Builds or locates llama-server with scripts/build-llama-server.sh; rejects with the reason.
 * `log` receives what the build says while it runs (its start, with an estimate, and progress).
 */
export function locateLlamaServer(log?: (line: string) => void): Promise<string> {
  const script = fileURLToPath(new URL('../../scripts/build-llama-server.sh', import.meta.url));
  return runSetupScript(script, [], log === undefined ? {} : { log }).catch((err: Error) => {
    throw new Error(`llama-server could not be built: ${err.message}`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts llama-server on a free loopback port and waits until /health is ok; stop() kills it by pid. */
export async function startLlamaServer(o: LlamaProcessOptions): Promise<LlamaProcess> {
  const port = o.port ?? (await freePort());
  const slots = o.slots ?? 4;
  const args = [
    '-m',
    o.modelPath,
    '--alias',
    o.alias,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '-np',
    String(slots),
    '-c',
    String(o.ctx ?? 512 * slots),
    '-t',
    String(o.threads ?? 1),
    ...(o.extraArgs ?? []),
  ];
  const child: ChildProcess = spawn(...pinned(o.cpus, o.bin, args), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}: ${log}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`llama-server did not become healthy: ${log}`);
    }
    await sleep(100);
  }
  const pid = child.pid as number;
  return {
    url,
    pid,
    alias: o.alias,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
