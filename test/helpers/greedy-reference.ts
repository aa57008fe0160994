/** The target's own greedy output via its native API, with per-token top-2 margins. */
export interface GreedyReference {
  text: string;
  tokens: number[];
  /** Byte length of each token's piece. */
  pieceBytes: number[];
  /** logprob(top1) − logprob(top2) at each position. */
  margins: number[];
}

/** Ties closer than this (nats) may break either way between batch shapes on llama.cpp's CPU kernels. */
export const NEAR_TIE_NATS = 0.002;

async function post(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Greedy decoding by the target alone from prompt ids. */
export async function greedyReference(
  targetUrl: string,
  promptIds: number[],
  maxTokens: number,
): Promise<GreedyReference> {
  const r = await post(`${targetUrl}/completion`, {
    prompt: promptIds,
    n_predict: maxTokens,
    temperature: 0,
    n_probs: 2,
    return_tokens: true,
  });
  const probs = r.completion_probabilities as { id: number; bytes: number[]; top_logprobs: { logprob: number }[] }[];
  return {
    text: r.content,
    tokens: probs.map((p) => p.id),
    pieceBytes: probs.map((p) => p.bytes.length),
    margins: probs.map((p) => (p.top_logprobs[0]?.logprob ?? 0) - (p.top_logprobs[1]?.logprob ?? -Infinity)),
  };
}

/** Text prompt → ids exactly as llama-server's own endpoints tokenize it. */
export async function tokenizeOn(targetUrl: string, text: string): Promise<number[]> {
  return (await post(`${targetUrl}/tokenize`, { content: text, add_special: true, parse_special: true })).tokens;
}

/**
 * Compares dsd's text with the reference. Returns 'identical', 'near-tie' when the first
 * difference starts at a token whose top-2 margin is below NEAR_TIE_NATS (the target itself
 * breaks such ties differently in different batch shapes), or a description of a real mismatch.
 */
export function compareWithReference(
  got: string,
  ref: GreedyReference,
  nearTieNats = NEAR_TIE_NATS,
): 'identical' | 'near-tie' | string {
  if (got === ref.text) return 'identical';
  const a = Buffer.from(got);
  const b = Buffer.from(ref.text);
  let byte = 0;
  while (byte < a.length && byte < b.length && a[byte] === b[byte]) byte++;
  let index = 0;
  for (let acc = 0; index < ref.pieceBytes.length && acc + (ref.pieceBytes[index] as number) <= byte; index++)
    acc += ref.pieceBytes[index] as number;
  const margin = ref.margins[index];
  if (margin !== undefined && margin < nearTieNats) return 'near-tie';
  return (
    `diverged at token ${index} (margin ${margin?.toFixed(4)} nats): ` +
    `…${got.slice(Math.max(0, byte - 20), byte + 20)}… vs …${ref.text.slice(Math.max(0, byte - 20), byte + 20)}…`
  );
}

/** Greedy decoding by a vLLM target alone from prompt ids, through its /v1/completions. */
export async function greedyReferenceVllm(
  url: string,
  model: string,
  promptIds: number[],
  maxTokens: number,
): Promise<GreedyReference> {
  const r = await post(`${url}/v1/completions`, {
    model,
    prompt: promptIds,
    max_tokens: maxTokens,
    temperature: 0,
    logprobs: 2,
  });
  const choice = r.choices[0] as {
    text: string;
    logprobs: { tokens: string[]; top_logprobs: Record<string, number>[] };
  };
  const pieces = choice.logprobs.tokens;
  return {
    text: choice.text,
    tokens: [],
    // The test vocabulary's pieces are ASCII or single bytes, so a piece's length is its byte count.
    pieceBytes: pieces.map((p) => (p.startsWith('bytes:') ? 1 : Buffer.byteLength(p))),
    margins: choice.logprobs.top_logprobs.map((top) => {
      const [first = 0, second = -Infinity] = Object.values(top).sort((a, b) => b - a);
      return first - second;
    }),
  };
}

/** Text prompt → ids exactly as vLLM's /tokenize does it. */
export async function tokenizeOnVllm(url: string, model: string, text: string): Promise<number[]> {
  return (await post(`${url}/tokenize`, { model, prompt: text })).tokens;
}

/**
 * Greedy decoding by an OpenAI-compatible target alone (a `dsd verifier`), with top-2 margins
 * from its logprobs, through /v1/completions.
 */
export async function greedyReferenceOpenAi(
  url: string,
  model: string,
  prompt: string,
  maxTokens: number,
): Promise<GreedyReference> {
  const r = await post(`${url}/v1/completions`, { model, prompt, max_tokens: maxTokens, temperature: 0, logprobs: 2 });
  const choice = r.choices[0] as {
    text: string;
    logprobs: { tokens: string[]; top_logprobs: Record<string, number>[] };
  };
  return {
    text: choice.text,
    tokens: [],
    pieceBytes: choice.logprobs.tokens.map((t) => Buffer.byteLength(t)),
    margins: choice.logprobs.top_logprobs.map((top) => {
      const [a = 0, b = -Infinity] = Object.values(top).sort((x, y) => y - x);
      return a - b;
    }),
  };
}
