import type { GeneratedToken, SamplingParams, TokenLogprob } from '../types.js';
import type { VllmCompletionChoice, VllmCompletionRequest } from './wire-types.js';

/** Options for building a /v1/completions body. */
export interface VllmBodyOptions {
  model: string;
  prompt: number[] | number[][];
  maxTokens: number;
  sampling: SamplingParams;
  topN: number;
  stream: boolean;
  cacheSalt?: string | undefined;
}

/**
 * A /v1/completions body with explicit sampling values and token ids returned as ids. Never
 * `prompt_logprobs` or `echo`: either makes vLLM skip its prefix cache.
 */
export function vllmCompletionBody(o: VllmBodyOptions): VllmCompletionRequest {
  const body: VllmCompletionRequest = {
    model: o.model,
    prompt: o.prompt,
    max_tokens: o.maxTokens,
    logprobs: Math.max(1, o.topN),
    temperature: o.sampling.temperature,
    top_p: o.sampling.topP,
    top_k: o.sampling.topK > 0 ? o.sampling.topK : -1,
    min_p: o.sampling.minP,
    return_tokens_as_token_ids: true,
    return_token_ids: true,
    skip_special_tokens: false,
  };
  if (o.sampling.seed !== undefined) body.seed = o.sampling.seed;
  if (o.stream) body.stream = true;
  if (o.cacheSalt !== undefined) body.cache_salt = o.cacheSalt;
  return body;
}

/** Parses `token_id:<id>`; undefined for anything else. */
export function parseTokenKey(key: string): number | undefined {
  const m = /^token_id:(\d+)$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

function topOf(entry: Record<string, number> | null | undefined): TokenLogprob[] | undefined {
  if (entry === null || entry === undefined) return undefined;
  const out: TokenLogprob[] = [];
  for (const [key, logprob] of Object.entries(entry)) {
    const id = parseTokenKey(key);
    // vLLM clamps -inf to -9999.0.
    if (id !== undefined) out.push({ id, logprob: logprob <= -9999 ? -Infinity : logprob });
  }
  return out.sort((a, b) => b.logprob - a.logprob);
}

/** The tokens a choice carries (ids from `token_ids`, else from `token_id:` logprob keys). */
export function tokensOfChoice(choice: VllmCompletionChoice): GeneratedToken[] {
  const lp = choice.logprobs ?? undefined;
  const keyed = (lp?.tokens ?? []).map(parseTokenKey);
  const ids = choice.token_ids ?? keyed.filter((id): id is number => id !== undefined);
  const out = ids.map((id, i): GeneratedToken => {
    const token: GeneratedToken = { id };
    const logprob = lp?.token_logprobs?.[i];
    if (typeof logprob === 'number') token.logprob = logprob;
    const top = topOf(lp?.top_logprobs?.[i]);
    if (top !== undefined) token.top = top;
    return token;
  });
  const last = out[out.length - 1];
  // finish_reason "stop" with no stop string means the model ended (EOS or a stop token id).
  if (last !== undefined && choice.finish_reason === 'stop' && typeof choice.stop_reason !== 'string') {
    last.endOfGeneration = true;
  }
  return out;
}
