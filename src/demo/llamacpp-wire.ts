import type { TokenProb } from '../speculative/sampling.js';
import type { EmulatedToken } from './generation.js';
import type { WordTokenizer } from './word-tokenizer.js';

/** A `completion_probabilities` entry exactly as llama-server writes it. */
export function probEntry(
  tok: WordTokenizer,
  t: EmulatedToken,
  nProbs: number,
  post: boolean,
): Record<string, unknown> {
  const dist = post ? t.sampled : t.raw;
  const own = dist.find((d) => d.id === t.id)?.prob ?? 0;
  const entry = (d: TokenProb) => {
    const base = { id: d.id, token: tok.piece(d.id), bytes: [...tok.bytes(d.id)] };
    return post ? { ...base, prob: d.prob } : { ...base, logprob: Math.log(d.prob) };
  };
  const top = dist.slice(0, nProbs).map(entry);
  return { ...entry({ id: t.id, prob: own }), [post ? 'top_probs' : 'top_logprobs']: top };
}

/** Keeps only `response_fields` (with `a/b` reaching into nested objects), as llama-server does. */
export function pickFields(result: Record<string, unknown>, fields: unknown): Record<string, unknown> {
  if (!Array.isArray(fields) || fields.length === 0) return result;
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (typeof field !== 'string') continue;
    let v: unknown = result;
    for (const part of field.split('/')) v = (v as Record<string, unknown> | undefined)?.[part];
    if (v !== undefined) out[field] = v;
  }
  return out;
}
