import type { OpenAiRoute } from '../../backends/types.js';

/** One alternative in client-facing form. */
export interface TokenAlternative {
  text: string;
  bytes: number[];
  logprob: number;
}

/** A committed token's log-probability and top alternatives, from the target's verification. */
export interface TokenLogprobEntry extends TokenAlternative {
  top: TokenAlternative[];
}

const decoder = new TextDecoder();

/** Client-facing form of a token given its bytes. */
export function alternative(bytes: Uint8Array, logprob: number): TokenAlternative {
  // OpenAI clamps -inf; JSON cannot carry it.
  return { text: decoder.decode(bytes), bytes: [...bytes], logprob: Number.isFinite(logprob) ? logprob : -9999 };
}

/**
 * The `logprobs` object of a choice: chat's `{content: [...]}` or the legacy completions arrays
 * (`text_offset` counts characters from the start of this response's text).
 */
export function logprobsBody(route: OpenAiRoute, entries: readonly TokenLogprobEntry[], textOffset: number): unknown {
  if (route === 'chat') {
    return {
      content: entries.map((e) => ({
        token: e.text,
        logprob: e.logprob,
        bytes: e.bytes,
        top_logprobs: e.top.map((t) => ({ token: t.text, logprob: t.logprob, bytes: t.bytes })),
      })),
      refusal: null,
    };
  }
  const offsets: number[] = [];
  let offset = textOffset;
  for (const e of entries) {
    offsets.push(offset);
    offset += e.text.length;
  }
  return {
    tokens: entries.map((e) => e.text),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [t.text, t.logprob]))),
    text_offset: offsets,
  };
}
