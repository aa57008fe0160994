import { readFileSync } from 'node:fs';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import type { DsdOptions } from '../src/config/types.js';
import { DEMO_CORPUS_PATH, demoModels } from '../src/demo/demo-backends.js';
import { AgreementModel } from '../src/demo/language-model.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { NgramModel } from '../src/demo/ngram-model.js';
import { chainHitMs } from '../src/speculative/chain-cost.js';
import { startInProcessDsd } from './in-process-dsd.js';

/** The scripted costs of one benchmark cell. */
export interface CellCosts {
  /** Target decode step (ms). */
  stepMs: number;
  /** Extra cost per scored position in a verification batch (ms). */
  perPositionMs: number;
  /** Fixed cost of any target request (ms). */
  perRequestMs: number;
  /** Draft time per token (ms). */
  draftMsPerToken: number;
  /** Round-trip time between dsd (and the direct client) and the target (ms). */
  rttMs: number;
  /** Greedy agreement of draft and target. */
  acceptance: number;
}

let endless: NgramModel | undefined;

/** The demo target trained as one endless document (no EOS), so outputs have a fixed length. */
function endlessTarget(): NgramModel {
  endless ??= NgramModel.train(
    demoModels().tokenizer,
    readFileSync(DEMO_CORPUS_PATH, 'utf8'),
    4,
    [0.55, 0.3, 0.13, 0.02],
    true,
  );
  return endless;
}

/** A running emulated draft–target pair with the target behind a delay proxy. */
export interface EmulatedPair {
  target: LlamaEmulator;
  draft: LlamaEmulator;
  proxy: DelayProxy;
  /** A dsd instance in front of the pair with the given speculation settings. */
  dsd(speculation: DsdOptions['speculation']): Promise<{ url: string; close(): Promise<void> }>;
  close(): Promise<void>;
}

/** Starts a pair with the costs of a cell. */
export async function startEmulatedPair(c: CellCosts): Promise<EmulatedPair> {
  const model = endlessTarget();
  const target = new LlamaEmulator({
    model,
    alias: 'target',
    slots: 32,
    contextTokens: 4096,
    latency: { perRequestMs: c.perRequestMs, perTokenMs: c.stepMs, perPositionMs: c.perPositionMs },
  });
  const draft = new LlamaEmulator({
    model: new AgreementModel(model, c.acceptance),
    alias: 'draft',
    contextTokens: 4096,
    latency: { perTokenMs: c.draftMsPerToken },
  });
  await Promise.all([target.listen(), draft.listen()]);
  const proxy = new DelayProxy({
    targetHost: '127.0.0.1',
    targetPort: Number(new URL(target.url).port),
    oneWayDelayMs: c.rttMs / 2,
  });
  await proxy.listen();
  const dsds: { close(): Promise<void> }[] = [];
  return {
    target,
    draft,
    proxy,
    dsd: async (speculation) => {
      // The emulated target verifies concurrent rounds side by side, as a batching GPU server does,
      // so early verification is set on (DSD_DRAFT_AHEAD_DEPTH=2), as auto would for a vLLM target.
      const handle = await startInProcessDsd({
        target: { urls: [proxy.url], kind: 'llamacpp' },
        draft: { urls: [draft.url], kind: 'llamacpp' },
        speculation: { windowMax: 16, aheadDepth: 2, ...speculation },
      });
      dsds.push(handle);
      return handle;
    },
    close: async () => {
      await Promise.all(dsds.map((d) => d.close()));
      await proxy.close();
      await Promise.all([target.close(), draft.close()]);
    },
  };
}

/** Time for one streamed completion of `tokens` tokens (ms) and the tokens received. */
export async function timedCompletion(
  baseUrl: string,
  prompt: string,
  tokens: number,
): Promise<{ ms: number; tokens: number; usage: any }> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'target',
      prompt,
      max_tokens: tokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const text = await res.text();
  const ms = performance.now() - started;
  const events = text
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)));
  const usage = events.find((e) => e.usage)?.usage;
  return { ms, tokens: usage?.completion_tokens ?? tokens, usage };
}

/**
 * Analytic ms/token: the target alone over the link, and the best (k, rounds sent ahead ≤ maxDepth)
 * by the planner's formula with the cell's true costs and acceptance (see AdaptiveWindow).
 */
export function analyticOptimum(
  c: CellCosts,
  tokens: number,
  maxDepth = 2,
): { targetAlone: number; best: number; bestK: number; bestDepth: number } {
  const targetAlone = c.stepMs + (c.rttMs + c.perRequestMs) / tokens;
  let best = targetAlone;
  let bestK = 0;
  let bestDepth = 0;
  for (let k = 1; k <= 16; k++) {
    for (let d = 0; d <= maxDepth && (d + 1) * (k + 1) <= 32; d++) {
      const expected = (1 - c.acceptance ** (k + 1)) / (1 - c.acceptance);
      const hit = c.acceptance ** (k + 1);
      const verify = c.rttMs + c.perRequestMs + c.stepMs + c.perPositionMs * (k + 1);
      const round =
        (1 - hit) * (k * c.draftMsPerToken + verify) +
        chainHitMs({ hit, nextDraftMs: (k + 1) * c.draftMsPerToken, verifyMs: verify, depth: d });
      if (round / expected < best * 0.98) {
        best = round / expected;
        bestK = k;
        bestDepth = d;
      }
    }
  }
  return { targetAlone, best, bestK, bestDepth };
}
