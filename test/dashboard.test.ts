import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import type { DashboardData } from '../src/server/http/dashboard-data.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const CHROMIUM = process.env.DSD_CHROMIUM ?? '/usr/bin/chromium';
const noBrowser = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
// The README's screenshot, remade with DSD_UPDATE_SCREENSHOT=1 (a normal run leaves docs/ alone).
const SCREENSHOT =
  process.env.DSD_UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../docs/dashboard.png', import.meta.url))
    : join(tmpdir(), `dsd-dashboard-${process.pid}.png`);
const KEY = 'dashboard-key';

/** The dashboard's data endpoint, without a browser. */
describe('GET /dashboard/data', () => {
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  let dsd: TestDsd;
  beforeAll(async () => {
    target = new LlamaEmulator({ model: demoModels().target, alias: 'target', latency: { perTokenMs: 2 } });
    draft = new LlamaEmulator({ model: demoModels().draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    dsd = await startTestDsd({ target: { urls: [target.url] }, draft: { urls: [draft.url] }, apiKeys: [KEY] });
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([target.close(), draft.close()]);
  });

  const auth = { authorization: `Bearer ${KEY}` };
  const generate = (speculative: boolean) =>
    postJson(
      `${dsd.baseUrl}/v1/completions`,
      { model: 'target', prompt: 'Once upon a time', max_tokens: 24, temperature: 0, dsd: { speculative } },
      auth,
    );

  it('needs the API key, and reports the pair, its acceptance by position and the measured speed-up', async () => {
    expect((await fetch(`${dsd.baseUrl}/dashboard/data`)).status).toBe(401);
    const page = await fetch(`${dsd.baseUrl}/dashboard`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    for (let i = 0; i < 3; i++) {
      await generate(true);
      await generate(false);
    }
    const data = (await (await fetch(`${dsd.baseUrl}/dashboard/data`, { headers: auth })).json()) as DashboardData;
    expect(data.pairs).toHaveLength(1);
    const pair = data.pairs[0]!;
    expect(pair.draft).toBe(draft.url);
    expect(pair.proposals).toBeGreaterThan(0);
    expect(pair.acceptanceByPosition[0]).toBeGreaterThan(0);
    expect(pair.lastRound?.k).toBeGreaterThanOrEqual(0);
    expect(data.targets).toMatchObject([{ url: target.url, kind: 'llamacpp', linkRttMs: null }]);
    expect(data.targets[0]!.requests).toBeGreaterThan(0);
    // The first speculative request may be spent measuring the target alone.
    expect(data.requests.speculative).toBeGreaterThanOrEqual(2);
    expect(data.requests.passthrough).toBeGreaterThanOrEqual(3);
    expect(data.targetAloneMsPerToken).toBeGreaterThan(0);
    expect(data.measuredSpeedup).toBeCloseTo(data.targetAloneMsPerToken! / data.speculativeMsPerToken!, 1);
  });

  /**
   * In headless Chromium (Debian's package, driven by playwright-core): the page asks for the key,
   * shows the pair, and its proposal count changes after a request. Leaves a screenshot for the README.
   */
  const title = `live in a real browser${noBrowser ? ` (skipped: ${noBrowser})` : ''}`;
  it.skipIf(noBrowser !== undefined)(
    title,
    async () => {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
        await page.goto(`${dsd.baseUrl}/dashboard`);
        await page.locator('#keyInput').waitFor({ state: 'visible', timeout: 10_000 });
        await page.fill('#keyInput', KEY);
        await page.click('#key button');
        const proposals = page.locator('tr.pair td.proposals');
        await proposals.waitFor({ timeout: 10_000 });
        const before = Number(await proposals.textContent());
        await generate(true);
        await page.waitForFunction(
          // Runs in the page, where `document` exists.
          (n) => Number((globalThis as any).document.querySelector('tr.pair td.proposals')?.textContent) > n,
          before,
          { timeout: 10_000 },
        );
        expect(await page.locator('tr.pair td').first().textContent()).toBe(draft.url);
        expect(await page.locator('#speedup').textContent()).toMatch(/×$/);
        await page.screenshot({ path: SCREENSHOT });
        expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
      } finally {
        await browser.close();
      }
      // Starting Chromium takes seconds, and tens of them while the rest of the suite loads both cores.
    },
    90_000,
  );
});
