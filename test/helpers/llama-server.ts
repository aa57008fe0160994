import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { inject } from 'vitest';

/** A llama-server process started by a test. */
export interface LlamaProcess {
  url: string;
  pid: number;
  alias: string;
  stop(): Promise<void>;
}

/** Options of a test llama-server. */
export interface LlamaProcessOptions {
  model: string;
  alias: string;
  slots?: number;
  /** Total context over all slots (each slot gets ctx / slots). */
  ctx?: number;
  threads?: number;
  extraArgs?: string[];
}

/** Why real-server tests must skip here, or undefined when they can run. */
export function llamaSkipReason(): string | undefined {
  const info = inject('llamaServer');
  return info.bin === null ? info.reason : undefined;
}

/** Path of a shared test model. */
export function modelPath(file: string): string {
  return resolve(inject('llamaServer').models, file);
}

/** A free loopback port (closed again before use; good enough on a test machine). */
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts llama-server on a free loopback port and waits until /health is ok. */
export async function startLlamaServer(o: LlamaProcessOptions): Promise<LlamaProcess> {
  const bin = inject('llamaServer').bin;
  if (bin === null) throw new Error(llamaSkipReason());
  const port = await freePort();
  const slots = o.slots ?? 4;
  const args = ['-m', modelPath(o.model), '--alias', o.alias, '--host', '127.0.0.1', '--port', String(port), '-np', String(slots), '-c', String(o.ctx ?? 512 * slots), '-t', String(o.threads ?? 1), ...(o.extraArgs ?? [])];
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`llama-server exited with ${child.exitCode}: ${log}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
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
