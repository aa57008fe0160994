import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EmulatedLatency } from './emulated-server.js';
import { LlamaEmulator } from './llamacpp-emulator.js';
import { NgramModel } from './ngram-model.js';
import { WordTokenizer } from './word-tokenizer.js';

/** The training text shipped with dsd (short children's stories written for the project). */
export const DEMO_CORPUS_PATH = fileURLToPath(new URL('../../data/demo-corpus.txt', import.meta.url));

/** The demo draft and target models, trained on the shipped text (same tokenizer). */
export interface DemoModels {
  tokenizer: WordTokenizer;
  /** A 4-gram model: the "big" target. */
  target: NgramModel;
  /** A bigram model: the "small" draft, which agrees with the target often but not always. */
  draft: NgramModel;
}

let cached: DemoModels | undefined;

/** Trains (once per process) the demo models. */
export function demoModels(): DemoModels {
  if (cached) return cached;
  const text = readFileSync(DEMO_CORPUS_PATH, 'utf8');
  const tokenizer = WordTokenizer.fromText(text);
  cached = {
    tokenizer,
    target: NgramModel.train(tokenizer, text, 4, [0.55, 0.3, 0.13, 0.02]),
    draft: NgramModel.train(tokenizer, text, 2, [0.8, 0.2]),
  };
  return cached;
}

/** Running demo backends speaking the llama.cpp API. */
export interface DemoBackends {
  target: LlamaEmulator;
  draft: LlamaEmulator;
  close(): Promise<void>;
}

/** Starts the demo draft and target on free loopback ports. */
export async function startDemoBackends(
  latency: { target?: Partial<EmulatedLatency>; draft?: Partial<EmulatedLatency> } = {},
): Promise<DemoBackends> {
  const models = demoModels();
  const target = new LlamaEmulator({ model: models.target, alias: 'dsd-demo-target', latency: latency.target ?? {} });
  const draft = new LlamaEmulator({ model: models.draft, alias: 'dsd-demo-draft', latency: latency.draft ?? {} });
  await Promise.all([target.listen(), draft.listen()]);
  return {
    target,
    draft,
    close: async () => {
      await Promise.all([target.close(), draft.close()]);
    },
  };
}
