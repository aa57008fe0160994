import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DsdOptions } from '../src/config/types.js';
import { demoModels } from '../src/demo/demo-backends.js';
import type { EmulatedFault } from '../src/demo/emulated-server.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { startTestDsd, type TestDsd } from './helpers/dsd.js';

/**
 * Fault-injection matrix (loopback only, bounded). Each scenario states what the client must see;
 * every response is either complete and correct (greedy: identical to the target alone) or a clean
 * OpenAI error — never a hang, never corrupted text.
 */
const models = demoModels();
const PROMPTS = [
  'Once upon a time',
  'The little bird',
  'Lily went to the beach',
  'The bear was very hungry.',
  'One day, Tom and Max',
];
const MAX_TOKENS = 32;

interface Outcome {
  kind: 'complete' | 'http-error' | 'stream-error' | 'hung' | 'broken';
  status: number;
  text: string;
  error?: { code: string; message: string };
}

/** Streams one completion and classifies what the client saw. */
async function stream(
  base: string,
  prompt: string,
  timeoutMs = 15_000,
  headers: Record<string, string> = {},
): Promise<Outcome> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'target', prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
      signal: controller.signal,
    });
    const raw = await res.text();
    if (!res.ok) {
      const body = JSON.parse(raw) as { error?: { code: string; message: string } };
      return body.error
        ? { kind: 'http-error', status: res.status, text: '', error: body.error }
        : { kind: 'broken', status: res.status, text: raw };
    }
    const events = raw
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    let text = '';
    for (const e of events) {
      if (e === '[DONE]') return { kind: 'complete', status: 200, text };
      const chunk = JSON.parse(e) as { error?: { code: string; message: string }; choices?: { text?: string }[] };
      if (chunk.error) return { kind: 'stream-error', status: 200, text, error: chunk.error };
      text += chunk.choices?.[0]?.text ?? '';
    }
    return { kind: 'broken', status: 200, text };
  } catch (err) {
    return { kind: controller.signal.aborted ? 'hung' : 'broken', status: 0, text: String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function startDsd(
  options: DsdOptions,
): Promise<{ base: string; router: TestDsd['router']; close(): Promise<void> }> {
  const dsd = await startTestDsd(options);
  return { base: dsd.baseUrl, router: dsd.router, close: dsd.close };
}

describe('fault-injection matrix', () => {
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  const reference = new Map<string, string>();

  beforeAll(async () => {
    target = new LlamaEmulator({ model: models.target, alias: 'target' });
    draft = new LlamaEmulator({ model: models.draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    for (const p of PROMPTS) {
      const r = await fetch(`${target.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'target', prompt: p, max_tokens: MAX_TOKENS, temperature: 0 }),
      });
      reference.set(p, ((await r.json()) as { choices: { text: string }[] }).choices[0]!.text);
    }
  });
  afterAll(() => Promise.all([target.close(), draft.close()]));

  const withFault = async (server: LlamaEmulator, fault: EmulatedFault, fn: () => Promise<void>) => {
    server.fault = fault;
    try {
      await fn();
    } finally {
      server.fault = 'none';
    }
  };

  it.each([
    ['http-500', 502, 'upstream_error'],
    ['malformed-json', 502, 'upstream_bad_response'],
  ] as const)('target answering %s: %i %s in the envelope', async (fault, status, code) => {
    const dsd = await startDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
    try {
      await stream(dsd.base, PROMPTS[0]!); // connect and check vocabulary first
      await withFault(target, fault, async () => {
        const out = await stream(dsd.base, PROMPTS[1]!);
        expect(out).toMatchObject({ kind: 'http-error', status, error: { code } });
      });
    } finally {
      await dsd.close();
    }
  });

  it('target answering 503 once: retried before any byte reached the client; output correct', async () => {
    const dsd = await startDsd({ target: { urls: [target.url] } });
    try {
      await stream(dsd.base, PROMPTS[0]!);
      target.fault = 'http-503';
      target.faultCount = 1;
      const out = await stream(dsd.base, PROMPTS[2]!);
      expect(out).toMatchObject({ kind: 'complete', text: reference.get(PROMPTS[2]!) });
      const metrics = await (await fetch(`${dsd.base}/metrics`)).text();
      expect(metrics).toMatch(/^dsd_upstream_retries_total\{role="target",upstream="[^"]+"\} [1-9]/m);
    } finally {
      target.fault = 'none';
      await dsd.close();
    }
  });

  it('target stalled past its timeout: 504, within the timeout', async () => {
    const dsd = await startDsd({
      target: { urls: [target.url], timeouts: { headersTimeoutMs: 300, bodyTimeoutMs: 300 } },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
    try {
      await stream(dsd.base, PROMPTS[0]!);
      await withFault(target, 'stall', async () => {
        const started = Date.now();
        const out = await stream(dsd.base, PROMPTS[3]!);
        expect(out).toMatchObject({ kind: 'http-error', status: 504, error: { code: 'upstream_timeout' } });
        expect(Date.now() - started).toBeLessThan(300 * 3 + 1_000);
      });
    } finally {
      await dsd.close();
    }
  });

  it('target killed mid-stream: the stream ends with an in-band error, text so far is a correct prefix', async () => {
    const victim = new LlamaEmulator({
      model: models.target,
      alias: 'target',
      latency: { perTokenMs: 5, perRequestMs: 5 },
    });
    await victim.listen();
    const dsd = await startDsd({
      target: { urls: [victim.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 2 },
    });
    try {
      await stream(dsd.base, PROMPTS[0]!);
      const pending = stream(dsd.base, PROMPTS[4]!);
      await new Promise((r) => setTimeout(r, 40));
      await victim.close();
      const out = await pending;
      expect(['stream-error', 'http-error']).toContain(out.kind);
      expect(reference.get(PROMPTS[4]!)!.startsWith(out.text)).toBe(true);
    } finally {
      await dsd.close();
    }
  });

  it('target sending malformed SSE (target-only streaming): an in-band error, never garbage text', async () => {
    const dsd = await startDsd({ target: { urls: [target.url] } });
    try {
      await stream(dsd.base, PROMPTS[0]!);
      await withFault(target, 'malformed-sse', async () => {
        const out = await stream(dsd.base, PROMPTS[1]!);
        expect(out.kind).toBe('stream-error');
        expect(out.error?.code).toBe('upstream_bad_response');
      });
    } finally {
      await dsd.close();
    }
  });

  it('a target down from the start (with a draft configured): 502', async () => {
    const dead = new LlamaEmulator({ model: models.target, alias: 'target' });
    await dead.listen();
    const url = dead.url;
    await dead.close();
    const dsd = await startDsd({ target: { urls: [url], kind: 'llamacpp' }, draft: { urls: [draft.url] } });
    try {
      expect(await stream(dsd.base, PROMPTS[0]!)).toMatchObject({
        kind: 'http-error',
        status: 502,
        error: { code: 'upstream_unavailable' },
      });
    } finally {
      await dsd.close();
    }
  });

  it('clients disconnecting mid-stream: upstream requests aborted, no leaked sockets or timers', async () => {
    const slowTarget = new LlamaEmulator({ model: models.target, alias: 'target', latency: { perTokenMs: 10 } });
    await slowTarget.listen();
    const dsd = await startDsd({
      target: { urls: [slowTarget.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 2 },
    });
    const resources = () => {
      const info = process.getActiveResourcesInfo();
      return {
        sockets: info.filter((r) => r === 'TCPSocketWrap').length,
        timers: info.filter((r) => r === 'Timeout').length,
      };
    };
    try {
      await stream(dsd.base, PROMPTS[0]!);
      const before = resources();
      for (let i = 0; i < 10; i++) {
        const controller = new AbortController();
        const res = await fetch(`${dsd.base}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'target',
            prompt: PROMPTS[i % PROMPTS.length],
            max_tokens: 300,
            temperature: 0,
            stream: true,
            dsd: { speculative: i % 2 === 0 },
          }),
          signal: controller.signal,
        });
        await res.body!.getReader().read();
        controller.abort();
      }
      await new Promise((r) => setTimeout(r, 300));
      const after = resources();
      expect(slowTarget.stats.aborted).toBeGreaterThanOrEqual(10);
      expect(after.timers).toBeLessThanOrEqual(before.timers + 1);
      expect(after.sockets).toBeLessThanOrEqual(before.sockets + 4);
      expect(dsd.router.dsd.admission.inFlight).toBe(0);
    } finally {
      await dsd.close();
      await slowTarget.close();
    }
  });
});
