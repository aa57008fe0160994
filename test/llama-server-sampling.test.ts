import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chiSquareTwoSample } from './helpers/chi-square.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';

const skip = llamaSkipReason();
const N = 600;
const PROMPT = 'The dog was';
const ALPHA = 0.001;

/**
 * At temperature 0.8 dsd must sample from the target's distribution. We draw N two-token
 * continuations of "The dog was" through dsd (window 1: every first token goes through the
 * acceptance rule) and N from the target alone with the same sampler settings, and test
 * homogeneity with a two-sample chi-square test: the test fails at p < 0.001. A control shows the
 * test has power: the target at temperature 0.5 against 0.8 is rejected.
 */
describe.skipIf(skip !== undefined)('temperature 0.8 through real llama-servers keeps the target distribution', () => {
  let target: LlamaProcess;
  let draft: LlamaProcess;

  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'target', slots: 4 });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
  });
  afterAll(async () => {
    await Promise.all([target?.stop(), draft?.stop()]);
  });

  async function direct(temperature: number, topK = 0): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await postJson(`${target.url}/completion`, {
        prompt: PROMPT,
        n_predict: 2,
        temperature,
        top_k: topK,
        top_p: 1,
        min_p: 0,
        samplers: ['top_k', 'top_p', 'min_p', 'temperature'],
      });
      out.push(r.body.content);
    }
    return out;
  }

  async function viaDsd(
    dsd: TestDsd,
    topK = 0,
  ): Promise<{ texts: string[]; accepted: number; drafted: number; rule: string }> {
    const texts: string[] = [];
    let accepted = 0;
    let drafted = 0;
    let rule = '';
    for (let i = 0; i < N; i++) {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: PROMPT,
        max_tokens: 2,
        temperature: 0.8,
        top_k: topK,
      });
      texts.push(r.body.choices[0].text);
      accepted += r.body.usage.dsd.accepted_tokens;
      drafted += r.body.usage.dsd.draft_tokens;
      rule = r.body.usage.dsd.acceptance_rule;
    }
    return { texts, accepted, drafted, rule };
  }

  it('sample-and-match (the default)', async () => {
    const dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 1 },
    });
    try {
      const [reference, got, control] = [await direct(0.8), await viaDsd(dsd), await direct(0.5)];
      const test = chiSquareTwoSample(got.texts, reference);
      const power = chiSquareTwoSample(control, reference);
      console.log(
        `sample-match: χ²=${test.statistic.toFixed(1)} df=${test.degreesOfFreedom} ` +
          `p=${test.pValue.toFixed(3)}; acceptance ${got.accepted}/${got.drafted}; control (T=0.5 vs 0.8) ` +
          `p=${power.pValue.toExponential(1)}`,
      );
      expect(got.rule).toBe('sample-match');
      expect(got.drafted).toBe(N);
      expect(got.accepted).toBeGreaterThan(N * 0.2);
      expect(test.pValue).toBeGreaterThan(ALPHA);
      expect(power.pValue).toBeLessThan(ALPHA);
    } finally {
      await dsd.close();
    }
  });

  it('rejection sampling, exact when top_k ≤ the probabilities asked for', async () => {
    const dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 1, acceptance: 'rejection', topLogprobs: 20 },
    });
    try {
      const [reference, got] = [await direct(0.8, 10), await viaDsd(dsd, 10)];
      const test = chiSquareTwoSample(got.texts, reference);
      console.log(
        `rejection (top_k 10): χ²=${test.statistic.toFixed(1)} df=${test.degreesOfFreedom} ` +
          `p=${test.pValue.toFixed(3)}; acceptance ${got.accepted}/${got.drafted}`,
      );
      expect(got.rule).toBe('rejection');
      expect(test.pValue).toBeGreaterThan(ALPHA);
    } finally {
      await dsd.close();
    }
  });
});
