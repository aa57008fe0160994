/** What the real-model benchmarks share: their options, the verifier as a process, a timed streamed completion. */
import { resolve } from 'node:path';

export { startVerifierProcess } from '../src/bench/verifier-process.js';

/** The options every real-model benchmark takes (`--prompts --tokens --delays --models`), with its defaults. */
export function realModelOptions(d: { prompts: string; tokens: string; delays: string }) {
  return {
    prompts: { type: 'string', default: d.prompts },
    tokens: { type: 'string', default: d.tokens },
    delays: { type: 'string', default: d.delays },
    models: {
      type: 'string',
      default: process.env.DSD_TEST_MODELS ?? resolve(import.meta.dirname, '../../shared/models'),
    },
  } as const;
}

/** One streamed completion: its time, tokens, text and dsd usage. */
export interface Result {
  ms: number;
  tokens: number;
  text: string;
  usage?: {
    dsd?: { acceptance_rate?: number; mean_acceptance_length?: number; rounds?: number; tree_branch_steps?: number };
  };
}

/** A greedy streamed completion, timed from the request to the last byte. */
export async function complete(baseUrl: string, prompt: string, name: string, maxTokens: number): Promise<Result> {
  const started = performance.now();
  const res = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: name,
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!res.ok) throw new Error(`${baseUrl}: HTTP ${res.status} ${await res.text()}`);
  let text = '';
  let tokens = 0;
  let usage: Result['usage'];
  const body = await res.text();
  for (const line of body.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const chunk = JSON.parse(line.slice(6)) as {
      choices?: { text?: string }[];
      usage?: Result['usage'] & { completion_tokens?: number };
    };
    text += chunk.choices?.[0]?.text ?? '';
    if (chunk.usage !== undefined && chunk.usage !== null) {
      usage = chunk.usage;
      tokens = chunk.usage.completion_tokens ?? tokens;
    }
  }
  return { ms: performance.now() - started, tokens, text, ...(usage === undefined ? {} : { usage }) };
}

/** The first model a server lists. */
export async function modelName(url: string): Promise<string> {
  return ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
}
