import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { PairEstimates } from '../src/speculative/estimates.js';
import { freePort } from './helpers/llama-server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = ['--import', 'tsx', fileURLToPath(new URL('../src/cli.ts', import.meta.url))];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A request on a new connection: the cluster spreads connections, not requests, over its workers. */
async function fetchFresh(url: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const dispatcher = new Agent();
  try {
    const r = await undiciFetch(url, { ...(init as object), dispatcher });
    return { status: r.status, text: await r.text() };
  } finally {
    await dispatcher.close();
  }
}

describe('pair estimates handed between processes', () => {
  it('a cold copy adopts a snapshot that knows more, and predicts the same; a warm one keeps its own', () => {
    const warm = new PairEstimates();
    for (let i = 0; i < 40; i++) {
      warm.observeRound({ drafted: 4, accepted: i % 5, draftMs: 3, draftWorkMs: 3, verifyMs: 20 + (i % 3) });
      warm.observeTargetOnlyGap(12);
    }
    const cold = new PairEstimates();
    expect(cold.adopt(JSON.parse(JSON.stringify(warm.snapshot())))).toBe(true);
    expect(cold.verifyMs.predict(5)).toBeCloseTo(warm.verifyMs.predict(5)!, 9);
    expect(cold.acceptance.rate(2)).toBeCloseTo(warm.acceptance.rate(2)!, 9);
    expect(cold.targetOnlyMsPerToken.value).toBeCloseTo(12, 9);
    const busy = new PairEstimates();
    for (let i = 0; i < 20; i++)
      busy.observeRound({ drafted: 2, accepted: 2, draftMs: 1, draftWorkMs: 1, verifyMs: 5 });
    expect(busy.adopt(warm.snapshot())).toBe(false);
  });
});

/**
 * `dsd serve --workers 2` as deployed, in front of emulated backends in this process (the workers
 * must share draft URLs to share estimates): one port, summed /metrics, a dead worker replaced and
 * warmed.
 */
describe('dsd serve --workers 2', () => {
  let child: ChildProcess;
  let base: string;
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  beforeAll(async () => {
    target = new LlamaEmulator({ model: demoModels().target, alias: 'dsd-demo-target' });
    draft = new LlamaEmulator({ model: demoModels().draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [...cli, 'serve', '--workers', '2', '--port', String(port)], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        DSD_LOG_LEVEL: 'warn',
        DSD_TARGET_URL: target.url,
        DSD_DRAFT_URL: draft.url,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!stdout.includes('/v1') && Date.now() < deadline) await sleep(100);
    expect(stdout).toContain(`${base}/v1`);
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all([target.close(), draft.close()]);
  });

  const complete = async () => {
    const r = await fetchFresh(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'dsd-demo-target', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 }),
    });
    expect(r.status).toBe(200);
    return JSON.parse(r.text) as { choices: { text: string }[] };
  };
  const dashboard = async () =>
    JSON.parse((await fetchFresh(`${base}/dashboard/data`)).text) as {
      pid: number;
      requests: { speculative: number; passthrough: number };
      pairs: { proposals: number }[];
    };
  const completions = async () => {
    const { text } = await fetchFresh(`${base}/metrics`);
    return Number(/^dsd_http_requests_total\{route="completions",status="200"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };

  it('serves from both workers on one port; /metrics adds them up', async () => {
    const texts = new Set<string>();
    for (let i = 0; i < 12; i++) texts.add((await complete()).choices[0]!.text);
    expect(texts.size).toBe(1); // greedy: the same text whichever worker served it
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) pids.add((await dashboard()).pid);
    expect(pids.size).toBe(2);
    expect(await completions()).toBe(12);
  });

  it('a worker killed with SIGKILL is replaced, and the new one starts with the others’ pair estimates', async () => {
    const victim = (await dashboard()).pid;
    process.kill(victim, 'SIGKILL');
    let fresh: Awaited<ReturnType<typeof dashboard>> | undefined;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      await sleep(500);
      const d = await dashboard().catch(() => undefined);
      // The replacement, once it has heard from the primary (every 2 s), before serving anything.
      if (
        d !== undefined &&
        d.pid !== victim &&
        d.requests.speculative + d.requests.passthrough === 0 &&
        (d.pairs[0]?.proposals ?? 0) > 0
      ) {
        fresh = d;
        break;
      }
    }
    expect(fresh).toBeDefined();
    expect((await complete()).choices[0]!.text.length).toBeGreaterThan(0);
  }, 30_000);

  it('SIGTERM stops the primary and its workers, exit code 0', async () => {
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  }, 20_000);
});
