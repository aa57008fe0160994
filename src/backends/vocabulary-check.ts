import { setMaxListeners } from 'node:events';
import type { ModelServer, ServerInfo } from './types.js';

/** Strings whose tokenization differs between unrelated vocabularies (UPSTREAM-APIS.md §4). */
export const VOCABULARY_PROBES = [
  'Hello, world! Once upon a time, there was a little girl named Lily.',
  '  leading spaces,   runs   of spaces,\ttabs\tand\n\nnewlines\n',
  '0123456789 3.14159 -42 1e10 2026-11-28',
  'function f(x) { return x * 2; } // code <tag attr="v">&amp;</tag>',
  '日本語のテキスト、中文文本、한국어',
  '😀🚀✨ café naïve Ελληνικά русский',
];

/**
 * Tokenized and put between the sampled ids. Servers render invalid UTF-8 differently when byte
 * tokens follow each other (Hugging Face's byte fallback turns a whole run that holds one invalid
 * byte into U+FFFD per byte; llama.cpp only the invalid bytes), so no two sampled ids touch.
 */
const SEPARATOR = ',';

function separated(ids: readonly number[], separator: readonly number[]): number[] {
  return ids.flatMap((id) => [id, ...separator]);
}

/** A server and what it said about itself. */
export interface DescribedServer {
  server: ModelServer;
  info: ServerInfo;
}

/** Ids spread over the vocabulary, including the top end, for the detokenize comparison. */
function sampleIds(size: number): number[] {
  const ids = new Set<number>();
  for (let i = 5; i < Math.min(size, 37); i++) ids.add(i);
  for (let i = 1; i <= 24; i++) ids.add(Math.floor(5 + ((size - 5) * i) / 25));
  for (let i = Math.max(5, size - 8); i < size; i++) ids.add(i);
  return [...ids].filter((id) => id >= 5 && id < size).sort((a, b) => a - b);
}

/**
 * Checks over HTTP that draft and target share a vocabulary: the same ids for every probe string,
 * the same BOS/EOS, sizes within 128 (llama.cpp's own rule), and the same text for ids spread
 * over the vocabulary. Returns undefined when they match, else what differs.
 */
export async function vocabularyMismatch(
  target: DescribedServer,
  draft: DescribedServer,
  outer: AbortSignal,
): Promise<string | undefined> {
  // Fourteen requests share one signal: a child signal with room for their abort listeners.
  const controller = new AbortController();
  setMaxListeners(64, controller.signal);
  const onAbort = () => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  try {
    return await compare(target, draft, controller.signal);
  } finally {
    outer.removeEventListener('abort', onAbort);
  }
}

async function compare(
  target: DescribedServer,
  draft: DescribedServer,
  signal: AbortSignal,
): Promise<string | undefined> {
  const t = target.info;
  const d = draft.info;
  if (t.bosId !== undefined && d.bosId !== undefined && t.bosId !== d.bosId)
    return `BOS ids differ (target ${t.bosId}, draft ${d.bosId})`;
  if (t.eosId !== undefined && d.eosId !== undefined && t.eosId !== d.eosId)
    return `EOS ids differ (target ${t.eosId}, draft ${d.eosId})`;
  if (t.vocabSize !== undefined && d.vocabSize !== undefined && Math.abs(t.vocabSize - d.vocabSize) > 128) {
    return `vocabulary sizes differ (target ${t.vocabSize}, draft ${d.vocabSize})`;
  }
  // Every probe at once: over a slow link the check costs one round trip, not one per probe.
  const size = Math.min(t.vocabSize ?? d.vocabSize ?? 1000, d.vocabSize ?? t.vocabSize ?? 1000);
  const probes = [...VOCABULARY_PROBES, SEPARATOR];
  const tokenized = await Promise.all(
    probes.map((probe) =>
      Promise.all([target.server.tokenize(probe, false, signal), draft.server.tokenize(probe, false, signal)]),
    ),
  );
  for (const [i, [a, b]] of tokenized.entries()) {
    if (a.length !== b.length || a.some((id, j) => id !== b[j])) {
      return (
        `they tokenize ${JSON.stringify((probes[i] as string).slice(0, 24))}… differently ` +
        `(target ${a.length} tokens, draft ${b.length})`
      );
    }
  }
  const ids = separated(sampleIds(size), tokenized[VOCABULARY_PROBES.length]?.[0] ?? []);
  const texts = await Promise.all([target.server.detokenize(ids, signal), draft.server.detokenize(ids, signal)]);
  if (texts[0] !== texts[1]) return `the same ${ids.length} token ids detokenize to different text`;
  return undefined;
}
