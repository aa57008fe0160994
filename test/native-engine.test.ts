import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadVerifierConfig } from '../src/config/verifier-config.js';
import { type EngineProbe, planEngine } from '../src/engine/engine-choice.js';
import { loadLlamaEngine } from '../src/engine/llama-engine.js';
import { openNativeEngine } from '../src/engine/native/native-engine.js';
import { checkManifest, loadNativeApi, PINNED_LLAMA_COMMIT } from '../src/engine/native/native-library.js';
import type { PositionSampling, TargetEngine } from '../src/engine/types.js';
import type { RunningVerifier } from '../src/verifier/main.js';
import { STORY_PROMPTS } from './fixtures-prompts.js';
import { chiSquareTwoSample } from './helpers/chi-square.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';
import { type LlamaProcess, modelPath, startLlamaServer } from './helpers/llama-server.js';
import { startTestVerifier } from './helpers/verifier.js';

const probe = (built: string[], devices: string[] = []): EngineProbe => ({
  unavailable: (v) => (built.includes(v) ? undefined : `${v} not built`),
  hasDevice: (k) => devices.includes(k),
});

describe('choosing the verifier engine (--engine, --gpu, --gpu-layers)', () => {
  const o = { engine: 'auto', gpu: 'auto', gpuLayers: 'all' } as const;

  it('auto takes a GPU build where the machine has the device, else the local CPU build, else the prebuilt one', () => {
    expect(planEngine(o, probe(['cuda', 'cpu'], ['cuda']))).toMatchObject({ variant: 'cuda', gpuLayers: -1 });
    expect(planEngine(o, probe(['cuda', 'cpu'], []))).toMatchObject({ variant: 'cpu', gpuLayers: 0 });
    expect(planEngine(o, probe(['vulkan', 'cpu-prebuilt'], ['vulkan']))).toMatchObject({ variant: 'vulkan' });
    expect(planEngine(o, probe(['cpu-prebuilt']))).toMatchObject({ kind: 'native', variant: 'cpu-prebuilt' });
    expect(planEngine({ ...o, gpuLayers: 12 }, probe(['cuda'], ['cuda']))).toMatchObject({ gpuLayers: 12 });
  });

  it('with no native build, auto falls back to node-llama-cpp and says why; native refuses', () => {
    const plan = planEngine(o, probe([]));
    expect(plan).toMatchObject({ kind: 'node-llama-cpp', gpu: 'auto' });
    expect(plan.kind === 'node-llama-cpp' && plan.why).toMatch(
      /cpu: cpu not built; cpu-prebuilt: cpu-prebuilt not built/,
    );
    expect(() => planEngine({ ...o, engine: 'native' }, probe([]))).toThrow(/no native engine.*build:engine/);
    expect(planEngine({ ...o, engine: 'node-llama-cpp', gpu: 'cpu' }, probe(['cpu']))).toMatchObject({
      kind: 'node-llama-cpp',
      gpu: false,
    });
  });

  it('an explicit GPU without its device is a clear error, not a silent CPU run', () => {
    expect(() => planEngine({ ...o, gpu: 'cuda' }, probe(['cuda']))).toThrow(/--gpu cuda: this machine has no NVIDIA/);
    expect(() => planEngine({ ...o, gpu: 'vulkan' }, probe(['vulkan']))).toThrow(/no Vulkan device/);
    expect(planEngine({ ...o, gpu: 'cpu' }, probe(['cuda', 'cpu'], ['cuda']))).toMatchObject({ variant: 'cpu' });
  });

  it('the variables are validated with the rest', () => {
    expect(() =>
      loadVerifierConfig({ DSD_VERIFIER_MODEL: 'x.gguf', DSD_VERIFIER_GPU: 'tpu', DSD_VERIFIER_GPU_LAYERS: 'many' }),
    ).toThrow(/DSD_VERIFIER_GPU="tpu".*\n?.*DSD_VERIFIER_GPU_LAYERS="many"/s);
    const c = loadVerifierConfig({ DSD_VERIFIER_MODEL: 'x.gguf', DSD_VERIFIER_GPU_LAYERS: '20', HOME: '/h' });
    expect(c).toMatchObject({ gpu: 'auto', gpuLayers: 20, engine: 'auto', cacheDir: '/h/.cache/dsd' });
  });

  it('a shim whose ABI, commit or library does not match is refused with the reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsd-shim-'));
    expect(checkManifest(dir)).toMatchObject({ reason: expect.stringMatching(/no native engine/) });
    const lib = join(dir, 'libllama.so');
    writeFileSync(lib, 'not a library');
    writeFileSync(join(dir, 'libdsd-eval.so'), '');
    const manifest = (m: Record<string, unknown>) =>
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({ abi: 1, variant: 'cpu', llamaCommit: PINNED_LLAMA_COMMIT, library: lib, ...m }),
      );
    manifest({ abi: 2 });
    expect(checkManifest(dir)).toMatchObject({ reason: expect.stringMatching(/ABI 2/) });
    manifest({ llamaCommit: 'abc' });
    expect(checkManifest(dir)).toMatchObject({ reason: expect.stringMatching(/compiled against llama.cpp abc/) });
    manifest({ librarySha256: '00' });
    expect(checkManifest(dir)).toMatchObject({ reason: expect.stringMatching(/changed since the shim was built/) });
    expect(() => loadNativeApi(dir)).toThrow(/changed since/);
  });
});

const native = inject('nativeEngine');
const GREEDY: PositionSampling = { sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 }, topN: 0 };

/** Greedy decoding one token per evaluation. */
async function decode(engine: TargetEngine, prompt: string, tokens: number): Promise<number[]> {
  const ids = await engine.tokenize(prompt, true);
  const seq = await engine.acquire(ids, AbortSignal.timeout(30_000));
  try {
    const out = [(await seq.evaluate(0, ids, 1, GREEDY))[0]!.id];
    while (out.length < tokens) out.push((await seq.evaluate(seq.held.length, [out.at(-1)!], 1, GREEDY))[0]!.id);
    return out;
  } finally {
    seq.release();
  }
}

/** Greedy decoding that verifies the next 4 tokens of `truth` as drafts each round; returns what it committed. */
async function decodeWithDrafts(engine: TargetEngine, prompt: string, truth: number[], tokens: number) {
  const ids = await engine.tokenize(prompt, true);
  const seq = await engine.acquire(ids, AbortSignal.timeout(30_000));
  try {
    const out = [(await seq.evaluate(0, ids, 1, GREEDY))[0]!.id];
    while (out.length < tokens) {
      const drafts = truth.slice(out.length, out.length + 4);
      const scored = await seq.evaluate(seq.held.length, [out.at(-1)!, ...drafts], drafts.length + 1, GREEDY);
      out.push(...scored.map((t) => t.id));
    }
    return out.slice(0, tokens);
  } finally {
    seq.release();
  }
}

describe.skipIf(native.dir === null)('the native engine (one native call per evaluation)', () => {
  let engine: TargetEngine;
  beforeAll(() => {
    const api = loadNativeApi(native.dir!);
    api.backendInit(api.manifest.backendDir, 0);
    engine = openNativeEngine(api, {
      modelPath: modelPath('stories260K-f32.gguf'),
      threads: 1,
      sequences: 4,
      gpuLayers: 0,
      backend: 'cpu',
    });
  });
  afterAll(() => engine?.close());

  it('decodes exactly what node-llama-cpp decodes, token for token', async () => {
    const reference = await loadLlamaEngine({ modelPath: modelPath('stories260K-f32.gguf'), threads: 1, sequences: 1 });
    try {
      for (const prompt of STORY_PROMPTS.slice(0, 3)) {
        expect(await decode(engine, prompt, 48)).toEqual(await decode(reference, prompt, 48));
        expect(await engine.tokenize(prompt, true)).toEqual(await reference.tokenize(prompt, true));
      }
      const ids = await engine.tokenize(STORY_PROMPTS[0]!, true);
      expect(await engine.detokenize(ids)).toBe(await reference.detokenize(ids));
    } finally {
      await reference.close();
    }
    expect(engine.info).toMatchObject({ engine: 'native', backend: 'cpu', vocabSize: 512, bosId: 1, eosId: 2 });
  });

  it('scores every position of a round in one evaluation, trims a rejected tail, and batches sequences', async () => {
    const prompt = STORY_PROMPTS[1]!;
    const truth = await decode(engine, prompt, 12);
    const ids = await engine.tokenize(prompt, true);
    const seq = await engine.acquire(ids, AbortSignal.timeout(30_000));
    try {
      // The target's own continuation as the "draft": the token after each prefix is the next one.
      const scored = await seq.evaluate(0, [...ids, ...truth.slice(0, 8)], 9, GREEDY);
      expect(scored.map((t) => t.id)).toEqual(truth.slice(0, 9));
      // A wrong draft from position 3 on: keep 3, evaluate again from there.
      const again = await seq.evaluate(ids.length + 3, [truth[3]!, truth[4]!], 2, GREEDY);
      expect(again.map((t) => t.id)).toEqual(truth.slice(4, 6));
      expect(seq.held.length).toBe(ids.length + 5);
    } finally {
      seq.release();
    }
    // Four sequences at once (one batch per step) give what each gives alone.
    const together = await Promise.all(STORY_PROMPTS.slice(0, 4).map((p) => decode(engine, p, 24)));
    for (const [i, p] of STORY_PROMPTS.slice(0, 4).entries()) expect(together[i]).toEqual(await decode(engine, p, 24));
    expect(engine.batchCost().peers).toBeGreaterThan(0);
  });

  it('a shared batch may verify fewer of a job’s drafts (or pad it): what it answers is the target’s own', async () => {
    const prompt = STORY_PROMPTS[2]!;
    const truth = await decode(engine, prompt, 12);
    const ids = await engine.tokenize(prompt, true);
    const others = STORY_PROMPTS.slice(3, 6).map((p) => decode(engine, p, 16));
    const seq = await engine.acquire(ids, AbortSignal.timeout(30_000));
    const answers: number[] = [];
    try {
      // One lone drafter among three generations decoding alone, six times over.
      const [first] = await seq.evaluate(0, ids, 1, GREEDY);
      answers.push(first!.id);
      for (let round = 0; round < 6 && answers.length < 10; round++) {
        const drafts = truth.slice(answers.length, answers.length + 4);
        const from = seq.held.length;
        const scored = await seq.evaluate(from, [answers.at(-1)!, ...drafts], drafts.length + 1, GREEDY);
        expect(scored.length).toBeGreaterThanOrEqual(1);
        expect(scored.length).toBeLessThanOrEqual(drafts.length + 1);
        // Only what it evaluated is held: the next round starts right after it.
        expect(seq.held.length).toBe(from + scored.length);
        answers.push(...scored.map((t) => t.id));
      }
    } finally {
      seq.release();
    }
    expect(answers).toEqual(truth.slice(0, answers.length));
    for (const [i, p] of STORY_PROMPTS.slice(3, 6).entries())
      expect(await others[i]).toEqual(await decode(engine, p, 16));
    // Three drafters beside one generation decoding alone: the batch may pad that one instead.
    const prompts = STORY_PROMPTS.slice(0, 3);
    const truths = await Promise.all(prompts.map((p) => decode(engine, p, 20)));
    const [drafted, alone] = await Promise.all([
      Promise.all(prompts.map((p, i) => decodeWithDrafts(engine, p, truths[i]!, 20))),
      decode(engine, STORY_PROMPTS[3]!, 20),
    ]);
    expect(drafted).toEqual(truths);
    expect(alone).toEqual(await decode(engine, STORY_PROMPTS[3]!, 20));
  });

  it('returns raw log-probabilities and the top alternatives when asked', async () => {
    const ids = await engine.tokenize(STORY_PROMPTS[0]!, true);
    const seq = await engine.acquire(ids, AbortSignal.timeout(30_000));
    try {
      const [t] = await seq.evaluate(0, ids, 1, { ...GREEDY, topN: 5 });
      expect(t!.top).toHaveLength(5);
      expect(t!.top![0]!.id).toBe(t!.id);
      expect(t!.logprob).toBeCloseTo(t!.top![0]!.logprob, 5);
      const logprobs = t!.top!.map((x) => x.logprob);
      expect(logprobs).toEqual([...logprobs].sort((a, b) => b - a));
      expect(logprobs.reduce((s, l) => s + Math.exp(l), 0)).toBeLessThanOrEqual(1 + 1e-6);
    } finally {
      seq.release();
    }
  });
});

describe.skipIf(native.dir === null)('T > 0 through a native verifier keeps the target’s distribution', () => {
  let verifier: RunningVerifier;
  let draft: LlamaProcess;
  let dsd: TestDsd;
  const N = 500;
  const ALPHA = 0.001;
  beforeAll(async () => {
    verifier = await startTestVerifier('stories260K-f32.gguf', { sequences: 2, engine: 'native' });
    draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
    // A fixed window: the small target decodes so fast that an adaptive planner rightly stops
    // speculating, and this test is about the rule, not the planner. Rounds: under a loaded run
    // the loopback's ping can pass the stream mode's round trip, and a 2-token stream ends before
    // any proposal arrives (3 draft tokens in 500 requests once).
    dsd = await startTestDsd({
      target: { urls: [verifier.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 2, draftAhead: false, verifierMode: 'rounds' },
    });
  });
  afterAll(async () => {
    await dsd?.close();
    await draft?.stop();
    await verifier?.stop();
  });

  it('two-sample χ² against the verifier alone passes; a different temperature is rejected (the control)', async () => {
    const sample = async (url: string, temperature: number) => {
      const texts: string[] = [];
      let drafted = 0;
      for (let i = 0; i < N; i++) {
        const r = await postJson(`${url}/v1/completions`, {
          model: verifier.engine.info.modelName,
          prompt: 'The dog was',
          max_tokens: 2,
          temperature,
          dsd: { window: 2 },
        });
        expect(r.status).toBe(200);
        texts.push(r.body.choices[0].text);
        drafted += r.body.usage.dsd?.draft_tokens ?? 0;
      }
      return { texts, drafted };
    };
    expect(verifier.engine.info.engine).toBe('native');
    const viaDsd = await sample(dsd.baseUrl, 0.8);
    const [alone, control] = [await sample(verifier.url, 0.8), await sample(verifier.url, 0.4)];
    const test = chiSquareTwoSample(viaDsd.texts, alone.texts);
    const power = chiSquareTwoSample(control.texts, alone.texts);
    console.log(
      `native verifier T=0.8: χ²=${test.statistic.toFixed(1)} df=${test.degreesOfFreedom} ` +
        `p=${test.pValue.toFixed(3)}; ` +
        `draft tokens ${viaDsd.drafted}; control (T=0.4) p=${power.pValue.toExponential(1)}`,
    );
    expect(viaDsd.drafted).toBeGreaterThan(N / 2);
    expect(test.pValue).toBeGreaterThan(ALPHA);
    expect(power.pValue).toBeLessThan(ALPHA);
  }, 300_000);
});
