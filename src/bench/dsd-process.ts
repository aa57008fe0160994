import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from './llama-process.js';

/** Polls `url` until it answers 2xx (10 s at most): a process is up. */
export async function waitUntilAnswers(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const up = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not answer`);
}

/** A benchmark process serving on loopback: its base URL and the child. */
export interface LoopbackProcess {
  url: string;
  child: ChildProcess;
}

/**
 * dsd as deployed, in its own process, so its CPU and memory are its own: `node [nodeFlags]
 * dist/cli.js serve` (build first) on a free loopback port, with `env` and nothing else of this
 * process's environment but PATH, logging only errors unless `env` says otherwise; resolves once
 * /health answers.
 */
export async function startDsdProcess(env: Record<string, string>, nodeFlags: readonly string[] = []) {
  const port = await freePort();
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, [...nodeFlags, 'dist/cli.js', 'serve'], {
    cwd,
    env: { PATH: process.env.PATH ?? '', DSD_LOG_LEVEL: 'error', ...env, DSD_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswers(`${url}/health`);
  } catch {
    child.kill('SIGKILL');
    throw new Error('dsd did not start');
  }
  return { url, child } satisfies LoopbackProcess;
}

/** A metric's value in a /metrics page's text: its first series, labelled or not (NaN when absent). */
export function metricIn(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[:]/g, '\\:')}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

/** A metric's value from a fresh read of `url`'s /metrics page (see `metricIn`). */
export async function metricValue(url: string, name: string): Promise<number> {
  return metricIn(await (await fetch(`${url}/metrics`)).text(), name);
}
