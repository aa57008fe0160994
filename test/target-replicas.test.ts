import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { VllmEmulator } from '../src/demo/vllm-emulator.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const models = demoModels();
const conversation = (i: number) => [
  { role: 'system', content: `You are storyteller number ${i}.` },
  { role: 'user', content: 'Tell me about Lily' },
];

describe('several target replicas: prefix-affine routing with failover', () => {
  const replicas: VllmEmulator[] = [];
  let draft: LlamaEmulator;
  let dsd: TestDsd;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) replicas.push(new VllmEmulator({ model: models.target, alias: 'big' }));
    draft = new LlamaEmulator({ model: models.draft, alias: 'draft' });
    await Promise.all([...replicas.map((r) => r.listen()), draft.listen()]);
    dsd = await startTestDsd({
      target: { urls: replicas.map((r) => r.url) },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([...replicas.map((r) => r.close().catch(() => undefined)), draft.close()]);
  });

  const completionCalls = () => replicas.map((r) => r.stats.requests);

  it('keeps each conversation on one replica and spreads conversations over replicas', async () => {
    const used = new Set<number>();
    for (let c = 0; c < 8; c++) {
      const before = completionCalls();
      for (let turn = 0; turn < 2; turn++) {
        const r = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
          model: 'big',
          messages: conversation(c),
          max_tokens: 12,
          temperature: 0,
        });
        expect(r.status).toBe(200);
      }
      const touched = completionCalls()
        .map((n, i) => n - (before[i] as number))
        .map((d, i) => (d > 0 ? i : -1))
        .filter((i) => i >= 0);
      // Once connected, one conversation's requests all go to a single replica.
      if (c > 0) expect(touched).toHaveLength(1);
      for (const i of touched) used.add(i);
    }
    expect(used.size).toBeGreaterThanOrEqual(2);
  });

  it('a replica that is stopped: its conversations fail over, output unchanged', async () => {
    const want = (
      await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
        model: 'big',
        messages: conversation(99),
        max_tokens: 16,
        temperature: 0,
      })
    ).body.choices[0].message.content;
    const before = completionCalls();
    await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model: 'big',
      messages: conversation(99),
      max_tokens: 16,
      temperature: 0,
    });
    const home = completionCalls().findIndex((n, i) => n > (before[i] as number));
    await replicas[home]!.close();
    const r = await postJson(`${dsd.baseUrl}/v1/chat/completions`, {
      model: 'big',
      messages: conversation(99),
      max_tokens: 16,
      temperature: 0,
    });
    expect(r.status).toBe(200);
    expect(r.body.choices[0].message.content).toBe(want);
    const ready = (await (await fetch(`${dsd.baseUrl}/ready`)).json()) as { status: string; targets: boolean[] };
    expect(ready.targets.filter((t: boolean) => !t)).toHaveLength(1);
    expect(ready.status).toBe('ready');
  });
});
