import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/logger.js';
import { type RunningDsd, startDsd } from '../src/server/main.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { postJson } from './helpers/dsd.js';
import { type LlamaProcess, llamaSkipReason, modelPath, startLlamaServer } from './helpers/llama-server.js';

const skip = llamaSkipReason() ?? (inject('nativeEngine').dir === null ? inject('nativeEngine').reason : undefined);

/** `dsd serve --draft-model small.gguf`: the draft in the edge's own process, no draft server. */
describe.skipIf(skip !== undefined)('an embedded draft (DSD_DRAFT_MODEL=FILE.gguf)', () => {
  let target: LlamaProcess;
  let dsd: RunningDsd;
  beforeAll(async () => {
    target = await startLlamaServer({ model: 'stories260K-f32.gguf', alias: 'target', slots: 8 });
    const config = loadConfig({
      DSD_TARGET_URL: target.url,
      DSD_DRAFT_MODEL: modelPath('stories260K-q4_0.gguf'),
      DSD_PORT: '0',
      DSD_WORKERS: '1',
      DSD_WINDOW: '4',
    });
    dsd = await startDsd(config, createLogger('silent'));
  });
  afterAll(async () => {
    await dsd?.stop(100);
    await target?.stop();
  });

  it('is the pool’s draft, and greedy output equals the target alone with real rounds', async () => {
    expect(Object.keys(dsd.router.dsd.upstreams.drafts.estimatesSnapshot())).toEqual(['http://in-process.draft']);
    let rounds = 0;
    let accepted = 0;
    for (const prompt of STORY_PROMPTS.slice(0, 3)) {
      const body = { model: 'target', prompt, max_tokens: 48, temperature: 0 };
      const alone = await postJson(`${target.url}/v1/completions`, body);
      const via = await postJson(`${dsd.baseUrl}/completions`, body);
      expect(via.status).toBe(200);
      expect(via.body.choices[0].text).toBe(alone.body.choices[0].text);
      rounds += via.body.usage.dsd.rounds;
      accepted += via.body.usage.dsd.accepted_tokens;
      expect(via.body.usage.dsd.fallback).toBeNull();
    }
    expect(rounds).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(rounds);
  });

  it('under the rejection rule, which needs post-sampling probabilities, the request goes on target-only', async () => {
    const local = await startDsd(
      loadConfig({
        DSD_TARGET_URL: target.url,
        DSD_DRAFT_MODEL: modelPath('stories260K-q4_0.gguf'),
        DSD_PORT: '0',
        DSD_WORKERS: '1',
        DSD_ACCEPTANCE: 'rejection',
      }),
      createLogger('silent'),
    );
    try {
      const r = await postJson(`${local.baseUrl}/completions`, {
        model: 'target',
        prompt: STORY_PROMPTS[0],
        max_tokens: 16,
        temperature: 0.8,
      });
      expect(r.status).toBe(200);
      expect(r.body.usage.completion_tokens).toBe(16);
      expect(r.body.usage.dsd.fallback).toMatch(/post-sampling/);
    } finally {
      await local.stop(100);
    }
  });
});

describe('DSD_DRAFT_MODEL', () => {
  it('a .gguf file is the embedded draft; any other value stays the model name sent to a draft server', () => {
    const file = loadConfig({ DSD_DRAFT_MODEL: '/m/small.gguf', DSD_DRAFT_THREADS: '2', HOME: '/h' });
    expect(file.embeddedDraft).toEqual({
      modelPath: '/m/small.gguf',
      threads: 2,
      sequences: 8,
      cacheDir: '/h/.cache/dsd',
    });
    expect(file.draft.model).toBeUndefined();
    const named = loadConfig({ DSD_DRAFT_MODEL: 'Qwen/Qwen3-0.6B' });
    expect(named.embeddedDraft).toBeUndefined();
    expect(named.draft.model).toBe('Qwen/Qwen3-0.6B');
    expect(() => loadConfig({ DSD_DRAFT_MODEL: 'a.gguf', DSD_DRAFT_SEQUENCES: '0' })).toThrow(/DSD_DRAFT_SEQUENCES/);
  });
});
