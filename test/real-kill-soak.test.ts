import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRng } from '../src/speculative/sampling.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { startTestDsd, type TestDsd } from './helpers/dsd.js';
import { compareWithReference, type GreedyReference, greedyReference, tokenizeOn } from './helpers/greedy-reference.js';
import { freePort, type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { soakStream } from './helpers/soak-stream.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const skip = llamaSkipReason();
const PROMPTS = STORY_PROMPTS.slice(0, 6);
const MAX_TOKENS = 48;
const CLIENTS = 6;
const SOAK_MS = 20_000;
const HUNG_MS = 30_000;

type Outcome = 'complete' | 'clean-error' | 'wrong' | 'hung';

/** A real llama-server that can be SIGKILLed and brought back on the same port. */
class Killable {
  proc: LlamaProcess | undefined;
  constructor(
    readonly model: string,
    readonly port: number,
    readonly slots: number,
  ) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.proc = await startLlamaServer({ model: this.model, alias: 'm', slots: this.slots, port: this.port });
  }
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (p === undefined) return;
    process.kill(p.pid, 'SIGKILL');
    await p.stop();
  }
}

/** One streamed completion of the soak read to its end (slowly, when `slow`). */
const stream = (baseUrl: string, prompt: string, slow: boolean) =>
  soakStream(baseUrl, prompt, { slow, maxTokens: MAX_TOKENS, hungMs: HUNG_MS });

const openFds = () => readdirSync('/proc/self/fd').length;

/**
 * Real llama-servers (target and two pooled drafts) SIGKILLed and restarted at random while
 * clients stream through dsd, one of them reading slowly. Every request must end complete and
 * identical to the target alone (near-ties allowed, as everywhere on llama.cpp's CPU kernels), or
 * with a clean OpenAI error whose text so far is a correct prefix; none may hang; open file
 * descriptors and heap return to their baseline.
 */
describe.skipIf(skip !== undefined)('faults in real servers: SIGKILL and restart during a soak', () => {
  let target: Killable;
  let drafts: Killable[];
  let dsd: TestDsd;
  let closed = false;
  /** Open file descriptors before dsd existed (the llama-servers' pipes included). */
  let fdsWithoutDsd = 0;
  const expected = new Map<string, GreedyReference>();

  beforeAll(async () => {
    target = new Killable('stories260K-f32.gguf', await freePort(), 8);
    drafts = [
      new Killable('stories260K-q4_0.gguf', await freePort(), 4),
      new Killable('stories260K-q8_0.gguf', await freePort(), 4),
    ];
    await Promise.all([target.start(), ...drafts.map((d) => d.start())]);
    for (const p of PROMPTS)
      expected.set(p, await greedyReference(target.url, await tokenizeOn(target.url, p), MAX_TOKENS));
    fdsWithoutDsd = openFds();
    dsd = await startTestDsd(
      {
        target: { urls: [target.url], timeouts: { connectTimeoutMs: 1_000, headersTimeoutMs: 10_000 } },
        draft: { urls: drafts.map((d) => d.url), timeouts: { connectTimeoutMs: 500, headersTimeoutMs: 2_000 } },
        speculation: { draftCooldownMs: 500 },
      },
      { DSD_ACCEPT_ANY_MODEL: 'true' },
    );
  });
  afterAll(async () => {
    if (!closed) await dsd?.close();
    await Promise.all([target?.kill(), ...(drafts ?? []).map((d) => d.kill())]);
  });

  it('every request complete and identical, or a clean error; none hung; fds and heap back to baseline', async () => {
    const rng = seededRng(17);
    // Warm up (connections, pools, estimates) with the same concurrent pass the recovery check makes.
    await Promise.all(PROMPTS.map((p) => stream(dsd.baseUrl, p, false)));
    await new Promise((r) => setTimeout(r, 1_000));
    gc();
    const fdsBefore = openFds();
    const heapBefore = process.memoryUsage().heapUsed;
    const outcomes: Record<Outcome, number> = { complete: 0, 'clean-error': 0, wrong: 0, hung: 0 };
    const wrong: string[] = [];
    let kills = 0;
    const end = Date.now() + SOAK_MS;
    const chaos = (async () => {
      while (Date.now() < end - 2_000) {
        await new Promise((r) => setTimeout(r, 800 + rng() * 1_700));
        const victim = rng() < 0.35 ? target : (drafts[Math.floor(rng() * drafts.length)] as Killable);
        await victim.kill();
        kills += 1;
        await new Promise((r) => setTimeout(r, 300 + rng() * 1_200));
        await victim.start();
      }
    })();
    const client = async (c: number) => {
      for (let i = 0; Date.now() < end; i++) {
        const prompt = PROMPTS[(c + i) % PROMPTS.length] as string;
        const ref = expected.get(prompt) as GreedyReference;
        try {
          const r = await stream(dsd.baseUrl, prompt, c === 0);
          const verdict = compareWithReference(r.text, ref);
          const correct = verdict === 'identical' || verdict === 'near-tie';
          // An error must come with nothing wrong before it: a prefix of the target's own text.
          if (r.error && (ref.text.startsWith(r.text) || verdict === 'near-tie')) {
            outcomes['clean-error'] += 1;
            await new Promise((done) => setTimeout(done, 250)); // a client backs off, as SDKs do
          } else if (!r.error && correct) outcomes.complete += 1;
          else {
            outcomes.wrong += 1;
            wrong.push(`${r.error ? 'error after ' : ''}${verdict}`);
          }
        } catch (err) {
          if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') outcomes.hung += 1;
          else outcomes['clean-error'] += 1;
        }
      }
    };
    await Promise.all([chaos, ...Array.from({ length: CLIENTS }, (_, c) => client(c))]);
    // Everything back up: every prompt completes and is identical again.
    const recovered = await Promise.all(PROMPTS.map((p) => stream(dsd.baseUrl, p, false)));
    const recoveredOk = recovered.filter((r, i) => {
      const v = compareWithReference(r.text, expected.get(PROMPTS[i] as string) as GreedyReference);
      return !r.error && (v === 'identical' || v === 'near-tie');
    }).length;
    await new Promise((r) => setTimeout(r, 1_000)); // sockets of the last requests close
    gc();
    const fdsAfter = openFds();
    const heapAfter = process.memoryUsage().heapUsed;
    // Whatever dsd opened during the chaos must go with it: keep-alive pools vary in size with
    // the bursts, so the leak check is against the process before dsd, once dsd is closed.
    await dsd.close();
    closed = true;
    await new Promise((r) => setTimeout(r, 500));
    const fdsClosed = openFds();
    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    console.log(
      `real-server soak: ${kills} SIGKILLs in ${SOAK_MS / 1000} s; ${total} requests: ${outcomes.complete} complete ` +
        `and identical, ${outcomes['clean-error']} clean errors, ${outcomes.wrong} wrong, ${outcomes.hung} hung; ` +
        `fds ${fdsBefore} → ${fdsAfter} (${fdsWithoutDsd} before dsd, ${fdsClosed} after it closed); ` +
        `heap ${(heapBefore / 2 ** 20).toFixed(1)} → ` +
        `${(heapAfter / 2 ** 20).toFixed(1)} MiB; after the chaos ${recoveredOk}/${PROMPTS.length} complete`,
    );
    expect(kills).toBeGreaterThanOrEqual(4);
    expect(outcomes.hung).toBe(0);
    expect(wrong).toEqual([]);
    expect(outcomes.complete).toBeGreaterThan(total / 4);
    expect(recoveredOk).toBe(PROMPTS.length);
    expect(fdsClosed).toBeLessThanOrEqual(fdsWithoutDsd);
    expect(heapAfter).toBeLessThan(heapBefore + 16 * 2 ** 20);
  }, 90_000);
});
