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
 * On a llama.cpp target, which has no salt: with DSD_CACHE_SCOPE=tenant a prompt tenant A just
 * sent is partly served from the slot's cache for tenant B (the residual risk the README states);
 * with DSD_CACHE_SCOPE=strict dsd sends `cache_prompt: false` and llama-server's own counter shows
 * B's prompt computed in full.
 */
describe.skipIf(skip !== undefined)('tenants on a llama.cpp target: what tenant scope leaves, strict closes', () => {
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

  /** Prompt tokens llama-server computed for tenant B's request of a prompt tenant A just sent. */
  async function computedForB(scope: 'tenant' | 'strict', speculative: boolean): Promise<{ b: number; len: number }> {
    const dsd = await startTestDsd(
      { target: { urls: [target.url] }, draft: { urls: [draft.url] }, apiKeys: KEYS },
      { DSD_CACHE_SCOPE: scope, DSD_ACCEPT_ANY_MODEL: 'true' },
    );
    try {
      const prompt = fresh();
      const send = async (key: string) => {
        const r = await postJson(
          `${dsd.baseUrl}/v1/completions`,
          { model: 'm', prompt, max_tokens: 1, temperature: 0, dsd: { speculative } },
          { authorization: `Bearer ${key}` },
        );
        expect(r.status).toBe(200);
        return r.body.usage.prompt_tokens as number;
      };
      await send(KEYS[0]!);
      const before = await computedPromptTokens(target.url);
      const len = await send(KEYS[1]!);
      return { b: (await computedPromptTokens(target.url)) - before, len };
    } finally {
      await dsd.close();
    }
  }

  it('passthrough and speculative: tenant scope reuses A’s cached prompt for B; strict computes it all', async () => {
    const rows: string[] = [];
    for (const speculative of [false, true]) {
      const tenant = await computedForB('tenant', speculative);
      const strict = await computedForB('strict', speculative);
      rows.push(
        `${speculative ? 'speculative' : 'passthrough'}: B computed ${tenant.b} of ${tenant.len} prompt tokens ` +
          `(tenant scope), ${strict.b} of ${strict.len} (strict)`,
      );
      expect(tenant.b).toBeLessThan(tenant.len / 2);
      expect(strict.b).toBeGreaterThanOrEqual(strict.len);
    }
    console.log(`llama.cpp target, tenant B on tenant A's prompt: ${rows.join('; ')}`);
  });
});
