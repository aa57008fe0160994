// Records real vLLM responses into test/fixtures/vllm/ (run: npx tsx scripts/record-vllm-fixtures.ts).
// Installs vLLM and converts the small test model first if needed (scripts/vllm-env.sh,
// scripts/hf-model.sh). Each fixture is { request, status, response } with the response as vLLM
// sent it, so test/vllm-fixtures.test.ts replays exactly what a real server says.
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hfModel, locateVllm, startVllm } from '../src/bench/vllm-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = resolve(root, 'test/fixtures/vllm');
const models = process.env.DSD_TEST_MODELS ?? resolve(root, '../shared/models');
const MODEL = 'stories-f32';
const PROMPT = [1, 403, 407, 261, 378];

interface Fixture {
  request: { method: 'GET' | 'POST'; path: string; body?: unknown };
  status: number;
  response: unknown;
}

async function record(url: string, request: Fixture['request']): Promise<Fixture> {
  const res = await fetch(`${url}${request.path}`, {
    method: request.method,
    headers: { 'content-type': 'application/json' },
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
  });
  const text = await res.text();
  const streamed = res.headers.get('content-type')?.includes('text/event-stream') ?? false;
  return { request, status: res.status, response: streamed ? text : JSON.parse(text) };
}

const completion = (extra: Record<string, unknown>) => ({
  model: MODEL,
  prompt: PROMPT,
  max_tokens: 8,
  temperature: 0,
  logprobs: 2,
  return_tokens_as_token_ids: true,
  return_token_ids: true,
  skip_special_tokens: false,
  ...extra,
});

const CASES: Record<string, Fixture['request']> = {
  models: { method: 'GET', path: '/v1/models' },
  tokenize: { method: 'POST', path: '/tokenize', body: { model: MODEL, prompt: 'Once upon a time' } },
  'tokenize-empty-special': {
    method: 'POST',
    path: '/tokenize',
    body: { model: MODEL, prompt: '', add_special_tokens: true },
  },
  'tokenize-messages': {
    method: 'POST',
    path: '/tokenize',
    body: { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], add_generation_prompt: true },
  },
  detokenize: { method: 'POST', path: '/detokenize', body: { model: MODEL, tokens: [1, 403, 407, 261, 378] } },
  'completion-ids': { method: 'POST', path: '/v1/completions', body: completion({}) },
  'completion-eos': {
    method: 'POST',
    path: '/v1/completions',
    body: completion({
      prompt: [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 42],
      max_tokens: 200,
    }),
  },
  'completion-batch': {
    method: 'POST',
    path: '/v1/completions',
    body: completion({ prompt: [PROMPT, [...PROMPT, 432], [...PROMPT, 432, 383]], max_tokens: 1, logprobs: 5 }),
  },
  'completion-stream': { method: 'POST', path: '/v1/completions', body: completion({ stream: true, max_tokens: 4 }) },
  'error-model': { method: 'POST', path: '/v1/completions', body: completion({ model: 'no-such-model' }) },
  'error-logprobs': { method: 'POST', path: '/v1/completions', body: completion({ logprobs: 21 }) },
  'error-context': {
    method: 'POST',
    path: '/v1/completions',
    body: completion({ prompt: Array.from({ length: 600 }, () => 300) }),
  },
  'chat-stream': {
    method: 'POST',
    path: '/v1/chat/completions',
    body: {
      model: MODEL,
      messages: [{ role: 'user', content: 'Once upon a time' }],
      max_tokens: 4,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    },
  },
};

async function main(): Promise<void> {
  const log = (line: string) => console.error(line);
  const bin = await locateVllm(log);
  const modelDir = await hfModel(resolve(models, 'stories260K-f32.gguf'), log);
  const vllm = await startVllm({ binDir: bin, modelDir, servedName: MODEL, maxLogprobs: 20 });
  try {
    mkdirSync(out, { recursive: true });
    const version = await record(vllm.url, { method: 'GET', path: '/version' });
    for (const [name, request] of Object.entries(CASES)) {
      const fixture = await record(vllm.url, request);
      writeFileSync(resolve(out, `${name}.json`), `${JSON.stringify(fixture, null, 2)}\n`);
      console.error(`recorded ${name}: ${fixture.status}`);
    }
    const metrics = await (await fetch(`${vllm.url}/metrics`)).text();
    const kept = metrics.split('\n').filter((l) => /^(# (HELP|TYPE) )?vllm:(prefix_cache|num_requests)/.test(l));
    writeFileSync(resolve(out, 'metrics.txt'), `${kept.join('\n')}\n`);
    writeFileSync(resolve(out, 'VERSION.json'), `${JSON.stringify(version.response, null, 2)}\n`);
  } finally {
    await vllm.stop();
  }
}

await main();
