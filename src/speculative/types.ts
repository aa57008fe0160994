/** The sampling transform a server applies; sent explicitly on every call (defaults differ). */
export interface SamplingParams {
  temperature: number;
  topP: number;
  /** 0 disables top-k. */
  topK: number;
  minP: number;
  seed?: number;
}

/** One alternative token with its log-probability (raw softmax unless stated). */
export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The token's bytes, when the server tells them. */
  bytes?: Uint8Array;
}

/** A token a server generated, with what it said about it. */
export interface GeneratedToken {
  id: number;
  bytes?: Uint8Array;
  logprob?: number;
  /** Top alternatives at this position (raw log-probabilities, or post-sampling ones when asked). */
  top?: TokenLogprob[];
  /** The server ended generation with this token (EOS or a stop token of its own). */
  endOfGeneration?: boolean;
}
