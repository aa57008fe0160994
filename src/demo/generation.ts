import {
  argmax,
  type Rng,
  sampleFrom,
  seededRng,
  type TokenProb,
  type TransformParams,
  transformDistribution,
} from '../speculative/sampling.js';
import type { LanguageModel } from './language-model.js';
import { EOS_ID } from './word-tokenizer.js';

/** One generated token and what llama.cpp would report about it. */
export interface EmulatedToken {
  id: number;
  /** Raw (temperature 1) distribution, most probable first. */
  raw: TokenProb[];
  /** The distribution actually sampled from. */
  sampled: TokenProb[];
}

/** Sampling options of one emulated generation. */
export interface EmulatedSampling extends TransformParams {
  seed: number | undefined;
}

/** Why an emulated generation stopped, in llama.cpp's `stop_type` words. */
export type EmulatedStop = 'eos' | 'limit';

/** Generates up to `maxTokens` tokens (stopping after EOS or at `contextTokens`). */
export function* emulateGeneration(
  model: LanguageModel,
  prompt: readonly number[],
  o: { maxTokens: number; contextTokens: number; sampling: EmulatedSampling },
): Generator<EmulatedToken, EmulatedStop> {
  const rng: Rng = seededRng(o.sampling.seed ?? Math.floor(Math.random() * 2 ** 32));
  const ctx = [...prompt];
  for (let i = 0; i < o.maxTokens && ctx.length < o.contextTokens; i++) {
    const raw = model.distribution(ctx).sort((a, b) => b.prob - a.prob || a.id - b.id);
    const sampled = transformDistribution(raw, o.sampling);
    const id = o.sampling.temperature <= 0 ? argmax(sampled) : sampleFrom(sampled, rng);
    ctx.push(id);
    yield { id, raw, sampled };
    if (id === EOS_ID) return 'eos';
  }
  return 'limit';
}
