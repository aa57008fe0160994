import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { NgramModel } from '../src/demo/ngram-model.js';
import { VllmEmulator } from '../src/demo/vllm-emulator.js';
import { WordTokenizer } from '../src/demo/word-tokenizer.js';
import { createLogger } from '../src/logger.js';
import { startDsd } from '../src/server/main.js';
import { postJson, startTestDsd } from './helpers/dsd.js';

const models = demoModels();

describe('vocabulary check between draft and target', () => {
  let target: LlamaEmulator;
  let sameVocabVllm: VllmEmulator;
  let foreign: LlamaEmulator;

  beforeAll(async () => {
    const otherText = 'A completely different text builds a different vocabulary of words and ids.';
    const otherTok = WordTokenizer.fromText(otherText);
    target = new LlamaEmulator({ model: models.target, alias: 'target' });
    sameVocabVllm = new VllmEmulator({ model: models.draft, alias: 'vllm-draft' });
    foreign = new LlamaEmulator({ model: NgramModel.train(otherTok, otherText, 2, [0.8, 0.2]), alias: 'foreign' });
    await Promise.all([target.listen(), sameVocabVllm.listen(), foreign.listen()]);
  });
  afterAll(() => Promise.all([target.close(), sameVocabVllm.close(), foreign.close()]));

  it('a mismatched draft is a clear startup error naming both servers', async () => {
    const config = loadConfig({}, { target: { urls: [target.url] }, draft: { urls: [foreign.url] }, port: 0 });
    await expect(startDsd(config, createLogger('silent'))).rejects.toThrow(
      new RegExp(`draft at ${foreign.url} and the target at ${target.url} do not share a vocabulary`),
    );
  });

  it('a matching draft of another kind (vLLM draft, llama.cpp target) passes and is used', async () => {
    const config = loadConfig({}, { target: { urls: [target.url] }, draft: { urls: [sameVocabVllm.url] }, port: 0 });
    const running = await startDsd(config, createLogger('silent'));
    try {
      const r = await postJson(`${running.baseUrl}/completions`, {
        model: 'target',
        prompt: 'Once upon a time',
        max_tokens: 12,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      expect(r.body.usage.dsd.rounds).toBeGreaterThan(0);
    } finally {
      await running.stop(1_000);
    }
  });

  it('at run time a mismatched draft is never used: requests go to the target alone', async () => {
    const dsd = await startTestDsd({ target: { urls: [target.url] }, draft: { urls: [foreign.url] } });
    try {
      const r = await postJson(`${dsd.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: 'Once upon a time',
        max_tokens: 12,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      expect(r.body.usage.dsd).toBeUndefined();
      expect(foreign.stats.lastCompletionBody).toBeUndefined();
    } finally {
      await dsd.close();
    }
  });
});
