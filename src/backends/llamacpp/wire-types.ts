// Wire shapes of llama-server's native API (snake_case kept), from the recorded responses in
// shared/reference/llama-server. Only the fields dsd reads are typed.

/** An entry of `completion_probabilities` or of its `top_logprobs`/`top_probs`. */
export interface LlamaTokenProb {
  id: number;
  token?: string;
  bytes?: number[];
  logprob?: number;
  prob?: number;
  top_logprobs?: LlamaTokenProb[];
  top_probs?: LlamaTokenProb[];
}

/** One result of POST /completion (also one element of a multi-prompt array). */
export interface LlamaCompletionResult {
  content?: string;
  tokens?: number[];
  stop?: boolean;
  stop_type?: string;
  completion_probabilities?: LlamaTokenProb[];
  timings?: { cache_n?: number; prompt_n?: number; prompt_ms?: number; predicted_ms?: number };
  'timings/cache_n'?: number;
  'timings/prompt_n'?: number;
  tokens_cached?: number;
}

/** GET /props (fields used). */
export interface LlamaProps {
  default_generation_settings?: { n_ctx?: number };
  total_slots?: number;
  model_alias?: string;
  model_path?: string;
  bos_token?: string;
  eos_token?: string;
}

/** GET /v1/models (fields used). */
export interface LlamaModels {
  data?: { id?: string; owned_by?: string; meta?: { n_vocab?: number; n_ctx_train?: number } }[];
}

/** The body dsd sends to POST /completion. */
export interface LlamaCompletionRequest {
  prompt: number[] | number[][];
  n_predict: number;
  n_probs: number;
  post_sampling_probs: boolean;
  return_tokens: true;
  cache_prompt: boolean;
  stream: boolean;
  temperature: number;
  top_k: number;
  top_p: number;
  min_p: number;
  samplers: string[];
  repeat_penalty: 1;
  presence_penalty: 0;
  frequency_penalty: 0;
  dry_multiplier: 0;
  xtc_probability: 0;
  typical_p: 1;
  top_n_sigma: -1;
  mirostat: 0;
  seed?: number;
  id_slot?: number;
  response_fields?: string[];
}
