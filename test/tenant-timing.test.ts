import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerifier } from '../src/verifier/main.js';
import { freshWordPrompt } from './fixtures-prompts.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { mannWhitney } from './helpers/mann-whitney.js';
import { startTestVerifier } from './helpers/verifier.js';

const skip = llamaSkipReason();
const TRIALS = 8;
const KEYS = ['timing-tenant-a', 'timing-tenant-b'];

/**
 * The timing side channel of shared prefix caches, measured: the heavy target in the verifier
 * (its prefill of a ~200-token prompt takes hundreds of ms; a cached prefix takes a few). Tenant
 * B's time to first token for a prompt tenant A just sent, against B's time for a fresh prompt of
 * the same length: a two-sided Mann–Whitney U test over 8 pairs. With DSD_CACHE_SCOPE=tenant the
 * two must be indistinguishable (p > 0.01, medians within 25 %); with global scope the same test
 * must show the difference (p < 0.01, the shared one at most half as long).
 */
describe.skipIf(skip !== undefined)('tenant isolation, timed: the prefix-cache side channel', () => {
  let verifier: RunningVerifier;
  let draft: LlamaProcess;
  let n = 0;
  const fresh = () => freshWordPrompt(++n, 100);

  beforeAll(async () => {
    verifier = await startTestVerifier('stories260K-ff32k-f32.gguf', { sequences: 4, threads: 1 });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
  });
  afterAll(async () => {
    await draft?.stop();
    await verifier?.stop();
  });

  async function measure(scope: 'tenant' | 'global'): Promise<{ shared: number[]; fresh: number[] }> {
    const dsd: TestDsd = await startTestDsd(
      { target: { urls: [verifier.url] }, draft: { urls: [draft.url] }, apiKeys: KEYS },
      { DSD_CACHE_SCOPE: scope, DSD_ACCEPT_ANY_MODEL: 'true' },
    );
    const ttft = async (key: string, prompt: string) => {
      const started = performance.now();
      const r = await postJson(
        `${dsd.baseUrl}/v1/completions`,
        { model: 'm', prompt, max_tokens: 1, temperature: 0 },
        { authorization: `Bearer ${key}` },
      );
      expect(r.status).toBe(200);
      return performance.now() - started;
    };
    try {
      await ttft(KEYS[1]!, fresh()); // connections and the pair's first estimates
      const out = { shared: [] as number[], fresh: [] as number[] };
      for (let t = 0; t < TRIALS; t++) {
        const prompt = fresh();
        await ttft(KEYS[0]!, prompt);
        // B's shared prompt right after A's, then a fresh one: a fresh prompt first could take A's
        // sequence (ties and chance prefixes) and evict what global scope would have shared.
        out.shared.push(await ttft(KEYS[1]!, prompt));
        out.fresh.push(await ttft(KEYS[1]!, fresh()));
      }
      return out;
    } finally {
      await dsd.close();
    }
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

  it('tenant scope: indistinguishable; global scope: the difference shows', async () => {
    const tenant = await measure('tenant');
    const global = await measure('global');
    const t = mannWhitney(tenant.shared, tenant.fresh);
    const g = mannWhitney(global.shared, global.fresh);
    console.log(
      `TTFT of tenant B, ms (median of ${TRIALS}): tenant scope — A's prompt ${median(tenant.shared).toFixed(0)}, ` +
        `fresh ${median(tenant.fresh).toFixed(0)} (Mann–Whitney p=${t.pValue.toFixed(3)}); global scope — ` +
        `A's prompt ${median(global.shared).toFixed(0)}, fresh ${median(global.fresh).toFixed(0)} ` +
        `(p=${g.pValue.toExponential(1)})`,
    );
    expect(t.pValue).toBeGreaterThan(0.01);
    expect(Math.abs(median(tenant.shared) / median(tenant.fresh) - 1)).toBeLessThan(0.25);
    expect(g.pValue).toBeLessThan(0.01);
    expect(median(global.shared)).toBeLessThan(median(global.fresh) / 2);
  }, 240_000);
});
