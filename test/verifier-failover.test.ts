import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifierProcess } from '../src/bench/verifier-process.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { compareWithReference, type GreedyReference, greedyReferenceOpenAi } from './helpers/greedy-reference.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { spawnVerifier } from './helpers/verifier.js';

const skip = llamaSkipReason();
// The heavy target (the same function as the small one at a realistic cost): a stream lasts long
// enough to be killed in the middle of.
const TARGET = 'stories260K-ff32k-f32.gguf';
// 144, not 160: prompt 2 has a top-2 tie at token 157 (0.0023 nats) that breaks either way with
// no fault at all, and the token-to-byte map of compareWithReference mislocates it on this text.
const MAX_TOKENS = 144;
/** Top-2 margins below this may break either way between evaluation shapes on the heavy target. */
const HEAVY_NEAR_TIE_NATS = 0.005;
// One sequence per replica: generations never share a batch, so greedy text is the target's own
// to the bit (batches of several sequences may break a near-tie the other way). A short drain:
// what the replica has not finished by then is handed over to the other one.
const REPLICA = { sequences: 1, flags: ['--drain-ms', '800'] };

/** A client's stream through dsd: its text, read until [DONE], and any error it carried. */
interface ClientStream {
  /** Resolves once the first text arrived. */
  started: Promise<void>;
  done: Promise<{ text: string; error: string | undefined }>;
}

function stream(base: string, model: string, prompt: string): ClientStream {
  let start: () => void = () => {};
  const started = new Promise<void>((r) => {
    start = r;
  });
  const done = (async () => {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
    });
    let text = '';
    let error: string | undefined;
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const data = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (data === '[DONE]' || data === '') continue;
        const event = JSON.parse(data) as { choices?: { text?: string }[]; error?: { code?: string } };
        if (event.error !== undefined) error = event.error.code ?? 'error';
        const t = event.choices?.[0]?.text ?? '';
        text += t;
        if (t !== '') start();
      }
    }
    start();
    return { text, error };
  })();
  return { started, done };
}

/**
 * Two verifier replicas behind one edge (DSD_TARGET_URL=a,b): a replica that dies or drains under
 * a stream costs the client nothing; the edge carries each generation on the other replica from
 * the context it mirrors, and the text is the target's own.
 */
describe.skipIf(skip !== undefined)('verifier replicas: mid-stream failover and draining', () => {
  const replicas: VerifierProcess[] = [];
  let draft: LlamaProcess;
  let dsd: TestDsd;
  let model: string;
  const prompts = STORY_PROMPTS.slice(0, 4);
  const alone: GreedyReference[] = [];

  const ports = () => replicas.map((r) => Number(new URL(r.url).port));
  /** The replica the edge has a generation open on now. */
  const serving = () =>
    dsd.router.dsd.upstreams.targets
      .connected()
      .filter((c) => (c.server.openSessions ?? 0) > 0)
      .map((c) => c.server.baseUrl);

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) replicas.push(await spawnVerifier(TARGET, REPLICA));
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 4 });
    dsd = await startTestDsd({
      target: { urls: replicas.map((r) => r.url) },
      draft: { urls: [draft.url] },
      targetFailover: true,
    });
    model = ((await (await fetch(`${replicas[0]!.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    for (const prompt of prompts) alone.push(await greedyReferenceOpenAi(replicas[0]!.url, model, prompt, MAX_TOKENS));
  });
  afterAll(async () => {
    await dsd?.close();
    await draft?.stop();
    for (const r of replicas) r.child.kill('SIGKILL');
  });

  it('the replica serving a stream is SIGKILLed: the stream completes, identical, with no error', async () => {
    const s = stream(dsd.baseUrl, model, prompts[0]!);
    await s.started;
    const victim = serving()[0];
    expect(victim).toBeDefined();
    const index = replicas.findIndex((r) => r.url === victim);
    const port = ports()[index]!;
    replicas[index]!.child.kill('SIGKILL');
    const got = await s.done;
    expect(got.error).toBeUndefined();
    expect(compareWithReference(got.text, alone[0]!)).toBe('identical');
    const metrics = await (await fetch(`${dsd.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/dsd_target_failovers_total\{from="[^"]+"\} [1-9]/);

    // Restarted on its port, the replica takes conversations again within 15 s.
    replicas[index] = await spawnVerifier(TARGET, { ...REPLICA, port });
    const restartedAt = performance.now();
    const requestsOn = () =>
      dsd.router.dsd.upstreams.links().find((l) => l.upstream === victim && l.role === 'target')?.requests ?? 0;
    const before = requestsOn();
    let back = false;
    for (let i = 0; !back && performance.now() - restartedAt < 15_000; i++) {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model,
        prompt: `Once upon a time number ${i} there was`,
        max_tokens: 4,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      back = requestsOn() > before;
      if (!back) await new Promise((r) => setTimeout(r, 200));
    }
    console.log(`restarted replica took sessions again after ${Math.round(performance.now() - restartedAt)} ms`);
    expect(back).toBe(true);
  }, 60_000);

  it('SIGTERM on a replica during 4 streams: it drains and hands over; all 4 get the target’s text', async () => {
    const streams = prompts.map((p) => stream(dsd.baseUrl, model, p));
    await Promise.all(streams.map((s) => s.started));
    const victim = serving()[0];
    expect(victim).toBeDefined();
    const index = replicas.findIndex((r) => r.url === victim);
    const failovers = async () =>
      [...(await (await fetch(`${dsd.baseUrl}/metrics`)).text()).matchAll(/dsd_target_failovers_total\{[^}]*\} (\d+)/g)]
        .map((m) => Number(m[1]))
        .reduce((a, b) => a + b, 0);
    const before = await failovers();
    const exited = new Promise((r) => replicas[index]!.child.once('exit', r));
    replicas[index]!.child.kill('SIGTERM');
    const results = await Promise.all(streams.map((s) => s.done));
    // Verifying k+1 positions in one evaluation instead of one by one may break an exact tie of the
    // top two tokens the other way on llama.cpp's CPU kernels (this heavy target has one at 0.000
    // and one at 0.0023 nats in these prompts, with or without a fault: the same text came out of a
    // run with no SIGTERM). Such ties are counted, with their margins; anything else fails.
    const verdicts = results.map((r, i) =>
      r.error === undefined ? compareWithReference(r.text, alone[i]!, HEAVY_NEAR_TIE_NATS) : r.error,
    );
    console.log(`drain: ${verdicts.join(', ')}`);
    for (const v of verdicts) expect(['identical', 'near-tie']).toContain(v);
    await exited;
    console.log(`drain: ${(await failovers()) - before} of 4 generations handed over to the other replica`);
    // New conversations go to the replica that stays.
    const r = await postJson(`${dsd.baseUrl}/v1/completions`, { model, prompt: 'Lily', max_tokens: 8, temperature: 0 });
    expect(r.status).toBe(200);
  }, 60_000);
});
