import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifierProcess } from '../src/bench/verifier-process.js';
import { seededRng } from '../src/speculative/sampling.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { startTestDsd, type TestDsd } from './helpers/dsd.js';
import { compareWithReference, type GreedyReference, greedyReferenceOpenAi } from './helpers/greedy-reference.js';
import { freePort, type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { soakStream } from './helpers/soak-stream.js';
import { spawnVerifier } from './helpers/verifier.js';

// Debug knobs (all optional): SOAK_SEED (the kill schedule), SOAK_ONLY=draft|replica, SOAK_ONE=1
// (always the first replica), SOAK_MODE=rounds|stream (DSD_VERIFIER_MODE).
const skip = llamaSkipReason();
const PROMPTS = STORY_PROMPTS.slice(0, 6);
const MAX_TOKENS = 64;
const CLIENTS = 6;
const SOAK_MS = 20_000;
const HUNG_MS = 30_000;
const TARGET = 'stories260K-f32.gguf';

/** A process that can be SIGKILLed and brought back on the same port. */
interface Killable {
  url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
}

function killableVerifier(port: number): Killable {
  let proc: VerifierProcess | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    start: async () => {
      proc = await spawnVerifier(TARGET, { port, sequences: 4 });
    },
    kill: async () => {
      const p = proc;
      proc = undefined;
      if (p === undefined || p.child.exitCode !== null) return;
      const exited = new Promise((r) => p.child.once('exit', r));
      p.child.kill('SIGKILL');
      await exited;
    },
  };
}

function killableDraft(model: string, port: number): Killable {
  let proc: LlamaProcess | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    start: async () => {
      proc = await startLlamaServer({ model, alias: 'm', slots: 4, port });
    },
    kill: async () => {
      const p = proc;
      proc = undefined;
      if (p === undefined) return;
      process.kill(p.pid, 'SIGKILL');
      await p.stop();
    },
  };
}

/** One streamed completion of the soak read to its end (slowly, when `slow`). */
const stream = (baseUrl: string, prompt: string, slow: boolean) =>
  soakStream(baseUrl, prompt, { slow, maxTokens: MAX_TOKENS, hungMs: HUNG_MS });

/**
 * Two verifier replicas and two llama-server drafts, SIGKILLed and restarted at random while six
 * clients stream through one edge, one of them reading slowly. One replica is always up, so no
 * client may see an error: each generation on a replica that dies goes on on the other one.
 * Every text must be the target's own (near-ties counted); nothing may hang.
 */
describe.skipIf(skip !== undefined)('verifier replicas and drafts killed at random during a soak', () => {
  let replicas: Killable[];
  let drafts: Killable[];
  let dsd: TestDsd;
  const expected = new Map<string, GreedyReference>();

  beforeAll(async () => {
    replicas = [killableVerifier(await freePort()), killableVerifier(await freePort())];
    drafts = [
      killableDraft('stories260K-q4_0.gguf', await freePort()),
      killableDraft('stories260K-q8_0.gguf', await freePort()),
    ];
    await Promise.all([...replicas, ...drafts].map((k) => k.start()));
    const model = ((await (await fetch(`${replicas[0]!.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!
      .id;
    for (const p of PROMPTS) expected.set(p, await greedyReferenceOpenAi(replicas[0]!.url, model, p, MAX_TOKENS));
    dsd = await startTestDsd(
      {
        target: {
          urls: replicas.map((r) => r.url),
          timeouts: { connectTimeoutMs: 1_000, headersTimeoutMs: 10_000 },
        },
        draft: { urls: drafts.map((d) => d.url), timeouts: { connectTimeoutMs: 500, headersTimeoutMs: 2_000 } },
        speculation: { draftCooldownMs: 500 },
        targetFailover: true,
      },
      { DSD_ACCEPT_ANY_MODEL: 'true', ...(process.env.SOAK_MODE ? { DSD_VERIFIER_MODE: process.env.SOAK_MODE } : {}) },
    );
  });
  afterAll(async () => {
    await dsd?.close();
    await Promise.all([...(replicas ?? []), ...(drafts ?? [])].map((k) => k.kill()));
  });

  it('0 wrong, 0 hung, 0 client-visible errors with a replica always up', async () => {
    const rng = seededRng(Number(process.env.SOAK_SEED ?? 23));
    await Promise.all(PROMPTS.map((p) => stream(dsd.baseUrl, p, false)));
    const outcomes = { complete: 0, error: 0, wrong: 0, hung: 0 };
    const wrong: string[] = [];
    const errors: string[] = [];
    const kills = { replica: 0, draft: 0 };
    const end = Date.now() + SOAK_MS;
    const chaos = (async () => {
      while (Date.now() < end - 2_000) {
        await new Promise((r) => setTimeout(r, 600 + rng() * 1_200));
        const isReplica =
          process.env.SOAK_ONLY === 'draft' ? false : process.env.SOAK_ONLY === 'replica' ? true : rng() < 0.6;
        const victim = isReplica
          ? (replicas[process.env.SOAK_ONE ? 0 : Math.floor(rng() * replicas.length)] as Killable)
          : (drafts[Math.floor(rng() * drafts.length)] as Killable);
        await victim.kill();
        kills[isReplica ? 'replica' : 'draft'] += 1;
        await new Promise((r) => setTimeout(r, 300 + rng() * 1_200));
        await victim.start();
      }
    })();
    const client = async (c: number) => {
      for (let i = 0; Date.now() < end; i++) {
        const prompt = PROMPTS[(c + i) % PROMPTS.length] as string;
        try {
          const r = await stream(dsd.baseUrl, prompt, c === 0);
          const verdict = compareWithReference(r.text, expected.get(prompt) as GreedyReference);
          if (r.error) {
            outcomes.error += 1;
            errors.push(r.errorText ?? 'an error without a body');
          } else if (verdict === 'identical' || verdict === 'near-tie') outcomes.complete += 1;
          else {
            outcomes.wrong += 1;
            wrong.push(`${JSON.stringify(r.text)} vs ${JSON.stringify(expected.get(prompt)?.text)}: ${verdict}`);
          }
        } catch (err) {
          if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') outcomes.hung += 1;
          else {
            outcomes.error += 1;
            errors.push(`the client's request failed: ${(err as Error).message}`);
          }
        }
      }
    };
    await Promise.all([chaos, ...Array.from({ length: CLIENTS }, (_, c) => client(c))]);
    const metrics = await (await fetch(`${dsd.baseUrl}/metrics`)).text();
    const failovers = [...metrics.matchAll(/dsd_target_failovers_total\{[^}]*\} (\d+)/g)].reduce(
      (a, m) => a + Number(m[1]),
      0,
    );
    console.log(
      `verifier soak: ${kills.replica} replica and ${kills.draft} draft SIGKILLs in ${SOAK_MS / 1000} s; ` +
        `${outcomes.complete} complete and identical, ${outcomes.error} client-visible errors, ` +
        `${outcomes.wrong} wrong, ${outcomes.hung} hung; ${failovers} generations failed over mid-way`,
    );
    if (process.env.SOAK_ONLY === undefined) expect(kills.replica).toBeGreaterThanOrEqual(3);
    expect(outcomes.hung).toBe(0);
    expect(wrong).toEqual([]);
    expect(errors).toEqual([]);
    expect(outcomes.complete).toBeGreaterThan(20);
  }, 90_000);
});
