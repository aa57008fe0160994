import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const dashboard = JSON.parse(readFileSync(new URL('../docs/grafana/dsd.json', import.meta.url), 'utf8')) as {
  panels: { title: string; targets: { expr: string }[] }[];
};

/** Every metric the Grafana dashboard queries is one dsd exports (a renamed metric breaks this). */
describe('docs/grafana/dsd.json', () => {
  let demo: DemoBackends;
  let dsd: TestDsd;
  beforeAll(async () => {
    demo = await startDemoBackends();
    dsd = await startTestDsd({ target: { urls: [demo.target.url] }, draft: { urls: [demo.draft.url] } });
    await postJson(`${dsd.baseUrl}/v1/completions`, { model: 'dsd-demo-target', prompt: 'The cat', max_tokens: 8 });
  });
  afterAll(async () => {
    await dsd?.close();
    await demo?.close();
  });

  it('queries only metrics that /metrics defines', async () => {
    const text = await (await fetch(`${dsd.baseUrl}/metrics`)).text();
    const defined = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const queried = new Set(
      dashboard.panels.flatMap((p) =>
        p.targets.flatMap((t) =>
          [...t.expr.matchAll(/\bdsd[_:][a-z_:]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')),
        ),
      ),
    );
    expect(queried.size).toBeGreaterThan(10);
    expect([...queried].filter((name) => !defined.has(name))).toEqual([]);
  });
});
