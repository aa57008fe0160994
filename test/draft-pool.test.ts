import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const models = demoModels();
const body = (prompt: string, extra: object = {}) => ({
  model: 'target',
  prompt,
  max_tokens: 48,
  temperature: 0,
  ...extra,
});

describe('draft pool', () => {
  let target: LlamaEmulator;
  const drafts: LlamaEmulator[] = [];
  let dsd: TestDsd;
  const reference = new Map<string, string>();

  beforeAll(async () => {
    target = new LlamaEmulator({ model: models.target, alias: 'target' });
    for (let i = 0; i < 3; i++) drafts.push(new LlamaEmulator({ model: models.draft, alias: `draft-${i}` }));
    await Promise.all([target.listen(), ...drafts.map((d) => d.listen())]);
    dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: drafts.map((d) => d.url), timeouts: { headersTimeoutMs: 300, bodyTimeoutMs: 300 } },
      speculation: { window: 3, draftCooldownMs: 60_000 },
    });
    for (const p of ['Once upon a time', 'The little bird', 'Lily went to the beach', 'The bear was very hungry.']) {
      reference.set(p, (await postJson(`${target.url}/v1/completions`, body(p))).body.choices[0].text);
    }
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([target.close(), ...drafts.map((d) => d.close())]);
  });

  const requestsTo = () => drafts.map((d) => d.stats.requests);

  it('keeps a conversation on one draft (affinity by prefix)', async () => {
    const before = requestsTo();
    for (let i = 0; i < 3; i++) {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, body('Once upon a time'));
      expect(r.body.choices[0].text).toBe(reference.get('Once upon a time'));
    }
    const used = requestsTo()
      .map((n, i) => n - (before[i] as number))
      .filter((n) => n > 0);
    expect(used).toHaveLength(1);
  });

  it('killing the assigned draft mid-stream: another member takes over, output identical', async () => {
    for (const d of drafts) d.latency.perRequestMs = 15;
    try {
      const before = requestsTo();
      const res = await fetch(`${dsd.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body('The little bird', { stream: true, stream_options: { include_usage: true } })),
      });
      const reader = res.body!.getReader();
      let raw = new TextDecoder().decode((await reader.read()).value);
      const assigned = drafts.findIndex((d, i) => d.stats.requests > (before[i] as number));
      expect(assigned).toBeGreaterThanOrEqual(0);
      const killedUrl = drafts[assigned]!.url;
      await drafts[assigned]!.close();
      for (let r = await reader.read(); !r.done; r = await reader.read()) raw += new TextDecoder().decode(r.value);
      const events = raw
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => JSON.parse(e.slice(6)));
      expect(events.map((e) => e.choices[0]?.text ?? '').join('')).toBe(reference.get('The little bird'));
      const usage = events.at(-1).usage;
      expect(usage.dsd.fallback).toContain(killedUrl);
      const others = drafts
        .filter((_, i) => i !== assigned)
        .map((d, j) => d.stats.requests - (before.filter((_, i) => i !== assigned)[j] as number));
      expect(others.some((n) => n > 0)).toBe(true);
      expect(usage.dsd.rounds).toBeGreaterThan(0);
      await drafts[assigned]!.listen(Number(new URL(killedUrl).port)).catch(() => undefined);
    } finally {
      for (const d of drafts) d.latency.perRequestMs = 0;
    }
  });

  it.each(['malformed-json', 'out-of-vocabulary', 'http-500'] as const)(
    'a draft answering with %s is dropped; output identical',
    async (fault) => {
      for (const d of drafts) d.fault = fault;
      try {
        const r = await postJson(`${dsd.baseUrl}/v1/completions`, body('Lily went to the beach'));
        expect(r.status).toBe(200);
        expect(r.body.choices[0].text).toBe(reference.get('Lily went to the beach'));
        expect(r.body.usage.dsd?.fallback ?? 'no draft used').toBeTruthy();
      } finally {
        for (const d of drafts) d.fault = 'none';
      }
    },
  );

  it('a stalled draft is dropped within its timeout', async () => {
    const fresh = new LlamaEmulator({ model: models.draft, alias: 'staller' });
    await fresh.listen();
    const single = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [fresh.url], timeouts: { headersTimeoutMs: 250, bodyTimeoutMs: 250 } },
      speculation: { window: 3 },
    });
    try {
      // Connects and checks the vocabulary.
      await postJson(`${single.baseUrl}/v1/completions`, body('The bear was very hungry.'));
      fresh.fault = 'stall';
      const started = Date.now();
      const r = await postJson(`${single.baseUrl}/v1/completions`, body('The bear was very hungry.'));
      const elapsed = Date.now() - started;
      expect(r.body.choices[0].text).toBe(reference.get('The bear was very hungry.'));
      expect(r.body.usage.dsd.fallback).toMatch(/timed out/);
      expect(elapsed).toBeLessThan(250 + 1_000);
    } finally {
      await single.close();
      await fresh.close();
    }
  });
});
