import type { GeneratedToken, SamplingParams, TokenLogprob } from '../types.js';
import type { LlamaCompletionRequest, LlamaCompletionResult, LlamaTokenProb } from './wire-types.js';

/** Options for building a native /completion body. */
export interface CompletionBodyOptions {
  prompt: number[] | number[][];
  maxTokens: number;
  sampling: SamplingParams;
  topN: number;
  postSamplingProbs: boolean;
  stream: boolean;
  slot?: number | undefined;
  noPromptCache?: boolean | undefined;
}

/** Fields dsd reads from a native /completion result; the rest (~1.5 kB of settings) is dropped. */
const RESPONSE_FIELDS = ['tokens', 'completion_probabilities', 'stop_type', 'timings/cache_n', 'timings/prompt_n'];

/**
 * The native /completion body with every sampling value explicit (llama-server's defaults add
 * penalties, DRY, top-k 40 and min-p 0.05, which would change the distribution silently).
 */
export function completionBody(o: CompletionBodyOptions): LlamaCompletionRequest {
  const body: LlamaCompletionRequest = {
    prompt: o.prompt,
    n_predict: o.maxTokens,
    // At least one entry per token: its `bytes` are how dsd learns each token's text exactly.
    n_probs: Math.max(1, o.topN),
    post_sampling_probs: o.postSamplingProbs,
    return_tokens: true,
    cache_prompt: o.noPromptCache !== true,
    stream: o.stream,
    temperature: o.sampling.temperature,
    top_k: o.sampling.topK,
    top_p: o.sampling.topP,
    min_p: o.sampling.minP,
    samplers: ['top_k', 'top_p', 'min_p', 'temperature'],
    repeat_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    dry_multiplier: 0,
    xtc_probability: 0,
    typical_p: 1,
    top_n_sigma: -1,
    mirostat: 0,
  };
  if (o.sampling.seed !== undefined) body.seed = o.sampling.seed;
  if (o.slot !== undefined) body.id_slot = o.slot;
  if (!o.stream) body.response_fields = RESPONSE_FIELDS;
  return body;
}

function toLogprob(p: LlamaTokenProb): number {
  if (typeof p.logprob === 'number') return p.logprob;
  if (typeof p.prob === 'number') return p.prob > 0 ? Math.log(p.prob) : -Infinity;
  return Number.NaN;
}

function toTokenLogprob(p: LlamaTokenProb): TokenLogprob {
  const out: TokenLogprob = { id: p.id, logprob: toLogprob(p) };
  if (Array.isArray(p.bytes)) out.bytes = Uint8Array.from(p.bytes);
  return out;
}

/** One generated token from its `completion_probabilities` entry (falls back to the bare id). */
export function tokenFromProb(id: number, prob: LlamaTokenProb | undefined): GeneratedToken {
  if (prob === undefined || prob.id !== id) return { id };
  const top = prob.top_logprobs ?? prob.top_probs;
  const token: GeneratedToken = { id, logprob: toLogprob(prob) };
  if (Array.isArray(prob.bytes)) token.bytes = Uint8Array.from(prob.bytes);
  if (top !== undefined) token.top = top.map(toTokenLogprob);
  return token;
}

/**
 * The generated tokens of a result. `tokens` omits an end-of-generation token on some builds, so
 * `completion_probabilities` (one entry per sampled token, EOS included) is preferred.
 */
export function tokensOfResult(result: LlamaCompletionResult): GeneratedToken[] {
  const probs = result.completion_probabilities ?? [];
  const ids = result.tokens ?? [];
  const count = Math.max(probs.length, ids.length);
  const out: GeneratedToken[] = [];
  for (let i = 0; i < count; i++) {
    const prob = probs[i];
    const id = prob?.id ?? ids[i];
    if (typeof id !== 'number') continue;
    out.push(tokenFromProb(id, prob));
  }
  const last = out[out.length - 1];
  if (last !== undefined && result.stop_type === 'eos') last.endOfGeneration = true;
  return out;
}
