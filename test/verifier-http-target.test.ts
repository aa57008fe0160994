import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerifier } from '../src/verifier/main.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { compareWithReference, type GreedyReference, greedyReference, tokenizeOn } from './helpers/greedy-reference.js';
import { type LlamaProcess, llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { startTestVerifier } from './helpers/verifier.js';

const MAX_TOKENS = 64;

/**
 * The verifier in front of a target that keeps its own HTTP API (llama-server on loopback): the
 * rounds' k+1 prompts go to it next door, and only deltas cross the edge↔verifier link.
 */
describe.skipIf(llamaSkipReason() !== undefined)('the verifier beside a llama-server target', () => {
  let target: LlamaProcess;
  let draft: LlamaProcess;
  let verifier: RunningVerifier;
  const expected: GreedyReference[] = [];
  const prompts = STORY_PROMPTS.slice(0, 6);

  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'target', slots: 8 });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 4 });
    verifier = await startTestVerifier('stories260K-f32.gguf', { modelPath: '', targetUrl: target.url, sequences: 4 });
    for (const prompt of prompts)
      expected.push(await greedyReference(target.url, await tokenizeOn(target.url, prompt), MAX_TOKENS));
  });
  afterAll(async () => {
    await verifier?.stop();
    await Promise.all([target?.stop(), draft?.stop()]);
  });

  for (const mode of ['rounds', 'stream'] as const) {
    it(`${mode}: greedy through edge → verifier → llama-server equals llama-server alone`, async () => {
      let dsd: TestDsd | undefined;
      try {
        dsd = await startTestDsd(
          { target: { urls: [verifier.url] }, draft: { urls: [draft.url] } },
          { DSD_VERIFIER_MODE: mode, DSD_ACCEPT_ANY_MODEL: 'true' },
        );
        let accepted = 0;
        let ties = 0;
        for (const [i, prompt] of prompts.entries()) {
          const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
            model: 'target',
            prompt,
            max_tokens: MAX_TOKENS,
            temperature: 0,
          });
          expect(r.status).toBe(200);
          const verdict = compareWithReference(r.body.choices[0].text, expected[i]!);
          expect(['identical', 'near-tie'], `prompt ${i}: ${verdict}`).toContain(verdict);
          if (verdict === 'near-tie') ties += 1;
          accepted += r.body.usage.dsd.accepted_tokens;
        }
        expect(ties).toBeLessThanOrEqual(1);
        expect(accepted).toBeGreaterThan(0);
      } finally {
        await dsd?.close();
      }
    });
  }

  it('serves the OpenAI API with the target alone, through its own chat template', async () => {
    const r = await postJson(`${verifier.url}/v1/chat/completions`, {
      model: 'target',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 16,
      temperature: 0,
    });
    expect(r.status).toBe(200);
    const direct = await postJson(`${target.url}/v1/chat/completions`, {
      model: 'target',
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 16,
      temperature: 0,
    });
    expect(r.body.choices[0].message.content).toBe(direct.body.choices[0].message.content);
  });
});
