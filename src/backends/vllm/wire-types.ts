// Wire shapes of vLLM's OpenAI server (snake_case kept), from shared/reference/UPSTREAM-APIS.md §2.

/** Legacy completions logprobs; with `return_tokens_as_token_ids` keys are `token_id:<id>`. */
export interface VllmLogprobs {
  tokens?: string[];
  token_logprobs?: (number | null)[];
  top_logprobs?: (Record<string, number> | null)[];
  text_offset?: number[];
}

/** One choice of a /v1/completions response or stream chunk. */
export interface VllmCompletionChoice {
  index: number;
  text?: string;
  token_ids?: number[] | null;
  logprobs?: VllmLogprobs | null;
  finish_reason?: string | null;
  stop_reason?: number | string | null;
}

/** POST /v1/completions response (or one stream chunk). */
export interface VllmCompletionResponse {
  choices?: VllmCompletionChoice[];
}

/** The body dsd sends to POST /v1/completions. */
export interface VllmCompletionRequest {
  model: string;
  prompt: number[] | number[][];
  max_tokens: number;
  logprobs: number;
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  seed?: number;
  stream?: boolean;
  cache_salt?: string;
  return_tokens_as_token_ids: true;
  return_token_ids: true;
  skip_special_tokens: false;
}

/** POST /tokenize response. */
export interface VllmTokenizeResponse {
  count?: number;
  max_model_len?: number;
  tokens?: number[];
}

/** GET /v1/models response (fields used). */
export interface VllmModels {
  data?: { id?: string; root?: string; max_model_len?: number; owned_by?: string }[];
}
