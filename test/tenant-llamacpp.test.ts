import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshWordPrompt } from './fixtures-prompts.js';
import { postJson, startTestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';

const skip = llamaSkipReason();
const KEYS = ['llama-tenant-a', 'llama-tenant-b'];

/** llama-server's own count of prompt tokens it computed (not taken from a slot's cache). */
async function computedPromptTokens(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^llamacpp:prompt_tokens_total (\S+)/m.exec(text)?.[1] ?? Number.NaN);
}

/**
 * On a llama.cpp target, which has no salt: dsd keeps an index of which tenant had the server
 * compute which prefixes and sends `cache_prompt: false` when another tenant computed more of a
 * request's context than its own tenant did. llama-server's own counter shows tenant B's copy of
 * tenant A's prompt computed in full, while A's repeat (and B's, once it computed it) still reuse
 * the cache; with DSD_CACHE_SCOPE=strict nothing is reused.
 */
describe.skipIf(skip !== undefined)('tenants on a llama.cpp target: isolated by default, own repeats cached', () => {
  let target: LlamaProcess;
  let draft: LlamaProcess;
  let n = 0;
  const fresh = () => freshWordPrompt(++n, 80);
  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'm', slots: 4, extraArgs: ['--metrics'] });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
  });
  afterAll(async () => {
    await Promise.all([target?.stop(), draft?.stop()]);
  });

  /** Prompt tokens llama-server computed for B's copy of A's prompt, then for A's repeat. */
  async function computed(
    scope: 'tenant' | 'strict',
    speculative: boolean,
  ): Promise<{ b: number; aRepeat: number; len: number }> {
    const dsd = await startTestDsd(
      { target: { urls: [target.url] }, draft: { urls: [draft.url] }, apiKeys: KEYS },
      { DSD_CACHE_SCOPE: scope, DSD_ACCEPT_ANY_MODEL: 'true' },
    );
    try {
      const prompt = fresh();
      const send = async (key: string) => {
        const before = await computedPromptTokens(target.url);
        const r = await postJson(
          `${dsd.baseUrl}/v1/completions`,
          { model: 'm', prompt, max_tokens: 1, temperature: 0, dsd: { speculative } },
          { authorization: `Bearer ${key}` },
        );
        expect(r.status).toBe(200);
        return {
          len: r.body.usage.prompt_tokens as number,
          computed: (await computedPromptTokens(target.url)) - before,
        };
      };
      await send(KEYS[0]!);
      const b = await send(KEYS[1]!);
      const aRepeat = await send(KEYS[0]!);
      return { b: b.computed, aRepeat: aRepeat.computed, len: b.len };
    } finally {
      await dsd.close();
    }
  }

  it('passthrough and speculative: B computes A’s prompt in full, A’s repeat reuses it; strict: none', async () => {
    const rows: string[] = [];
    for (const speculative of [false, true]) {
      const tenant = await computed('tenant', speculative);
      const strict = await computed('strict', speculative);
      rows.push(
        `${speculative ? 'speculative' : 'passthrough'}: B computed ${tenant.b} of ${tenant.len} prompt tokens and ` +
          `A's repeat ${tenant.aRepeat} (tenant scope); ${strict.b} and ${strict.aRepeat} (strict)`,
      );
      expect(tenant.b).toBeGreaterThanOrEqual(0.9 * tenant.len);
      expect(tenant.aRepeat).toBeLessThan(tenant.len / 2);
      expect(strict.b).toBeGreaterThanOrEqual(strict.len);
      expect(strict.aRepeat).toBeGreaterThanOrEqual(strict.len);
    }
    console.log(`llama.cpp target, tenant B on tenant A's prompt: ${rows.join('; ')}`);
  });
});
