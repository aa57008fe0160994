import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import type { EmulatedFault } from '../src/demo/emulated-server.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { createLogger } from '../src/logger.js';
import { type RunningDsd, startDsd } from '../src/server/main.js';
import { seededRng } from '../src/speculative/sampling.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const models = demoModels();
const PROMPTS = [
  'Once upon a time',
  'The little bird',
  'Lily went to the beach',
  'The bear was very hungry.',
  'One day, Tom and Max',
  'The sun was warm',
];
const MAX_TOKENS = 24;
const CLIENTS = 200;
const SOAK_MS = 6_000;
const DRAFT_FAULTS: EmulatedFault[] = [
  'none',
  'none',
  'none',
  'malformed-json',
  'http-500',
  'out-of-vocabulary',
  'stall',
];

/**
 * Soak: 200 concurrent streaming clients for a bounded time against emulated backends whose drafts
 * fail at random (and the target now and then). Every response must be complete and identical to
 * the target alone, or a clean OpenAI error; none may hang; memory returns to its baseline.
 */
describe('soak: 200 concurrent streaming clients with random faults', () => {
  let target: LlamaEmulator;
  let drafts: LlamaEmulator[];
  let dsd: RunningDsd;
  const reference = new Map<string, string>();

  beforeAll(async () => {
    target = new LlamaEmulator({ model: models.target, alias: 'target', latency: { perTokenMs: 2 } });
    drafts = [0, 1].map(
      (i) => new LlamaEmulator({ model: models.draft, alias: `draft-${i}`, latency: { perTokenMs: 1 } }),
    );
    await Promise.all([target.listen(), ...drafts.map((d) => d.listen())]);
    for (const p of PROMPTS) {
      const r = await fetch(`${target.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'target', prompt: p, max_tokens: MAX_TOKENS, temperature: 0 }),
      });
      reference.set(p, ((await r.json()) as { choices: { text: string }[] }).choices[0]!.text);
    }
    const config = loadConfig(
      {},
      {
        port: 0,
        target: { urls: [target.url], timeouts: { headersTimeoutMs: 3_000, bodyTimeoutMs: 3_000 } },
        draft: { urls: drafts.map((d) => d.url), timeouts: { headersTimeoutMs: 300, bodyTimeoutMs: 300 } },
        speculation: { draftCooldownMs: 200 },
      },
    );
    dsd = await startDsd(config, createLogger('silent'));
  });
  afterAll(async () => {
    await dsd.stop(1_000);
    await Promise.all([target.close(), ...drafts.map((d) => d.close())]);
  });

  it('every response complete and correct or a clean error; none hung; memory back to baseline', async () => {
    const base = dsd.baseUrl.replace(/\/v1$/, '');
    const one = async (prompt: string) => {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 20_000);
      try {
        const res = await fetch(`${base}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'target', prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true }),
          signal: controller.signal,
        });
        const raw = await res.text();
        if (!res.ok) return JSON.parse(raw).error?.code ? 'clean-error' : 'broken';
        const events = raw
          .split('\n\n')
          .filter((e) => e.startsWith('data: '))
          .map((e) => e.slice(6));
        let text = '';
        for (const e of events) {
          if (e === '[DONE]') return text === reference.get(prompt) ? 'correct' : 'wrong-text';
          const chunk = JSON.parse(e);
          if (chunk.error?.code) return reference.get(prompt)!.startsWith(text) ? 'clean-error' : 'wrong-text';
          text += chunk.choices?.[0]?.text ?? '';
        }
        return 'broken';
      } catch {
        return controller.signal.aborted ? 'hung' : 'broken';
      } finally {
        clearTimeout(timer);
      }
    };
    // Warm up, then take the memory baseline.
    await Promise.all(PROMPTS.map((p) => one(p)));
    gc();
    const baseline = process.memoryUsage().heapUsed;

    const rng = seededRng(42);
    const chaos = setInterval(() => {
      for (const d of drafts) d.fault = DRAFT_FAULTS[Math.floor(rng() * DRAFT_FAULTS.length)] as EmulatedFault;
      target.fault = rng() < 0.05 ? 'http-503' : rng() < 0.05 ? 'http-500' : 'none';
    }, 150);
    const counts: Record<string, number> = {};
    const deadline = Date.now() + SOAK_MS;
    let peakRss = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let i = 0; Date.now() < deadline; i++) {
          const outcome = await one(PROMPTS[(c + i) % PROMPTS.length] as string);
          counts[outcome] = (counts[outcome] ?? 0) + 1;
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
        }
      }),
    );
    clearInterval(chaos);
    for (const d of drafts) d.fault = 'none';
    target.fault = 'none';
    await new Promise((r) => setTimeout(r, 500));
    gc();
    const after = process.memoryUsage().heapUsed;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(
      `soak: ${total} requests from ${CLIENTS} concurrent clients in ${SOAK_MS / 1000} s: ` +
        `${JSON.stringify(counts)}; heap ${(baseline / 1e6).toFixed(1)} MB → ${(after / 1e6).toFixed(1)} MB ` +
        `after; peak RSS ${(peakRss / 1e6).toFixed(0)} MB`,
    );
    expect(counts.hung ?? 0).toBe(0);
    expect(counts.broken ?? 0).toBe(0);
    expect(counts['wrong-text'] ?? 0).toBe(0);
    expect(counts.correct ?? 0).toBeGreaterThan(total * 0.5);
    expect(after - baseline).toBeLessThan(30e6);
    expect(dsd.server.listening).toBe(true);
  });
});
