/**
 * The heavy target on a real vLLM (CPU build, scripts/vllm-env.sh; model widened by
 * scripts/hf-model.sh): a client straight from vLLM, dsd (adaptive, and a fixed window 4) with the
 * q4_0 draft on a llama-server local to dsd, dsd → verifier → vLLM, and vLLM's own draft-model
 * speculative decoding with the q4_0 draft (dequantized to f32 by the converter), across a delay
 * proxy between the edge and the target side; greedy, setups interleaved prompt by prompt.
 *
 *   npm run bench:vllm [-- --prompts 5 --tokens 96 --delays 0,10,25]
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { delayProxyTo } from '../src/bench/delay-proxy.js';
import { locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { hfModel, locateVllm, startVllm } from '../src/bench/vllm-process.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';
import { startInProcessDsd } from './in-process-dsd.js';
import { complete, realModelOptions, startVerifierProcess } from './verifier-common.js';

const { values } = parseArgs({ options: realModelOptions({ prompts: '5', tokens: '96', delays: '0,10,25' }) });
const TOKENS = Number(values.tokens);
const PROMPTS = STORY_PROMPTS.slice(0, Number(values.prompts));
const gguf = (f: string) => resolve(values.models, f);
const log = (line: string) => console.error(line);

const binDir = await locateVllm(log);
const heavyDir = await hfModel(gguf('stories260K-ff32k-f32.gguf'), log);
const draftDir = await hfModel(gguf('stories260K-q4_0.gguf'), log);
const version = execFileSync(`${binDir}/python`, ['-c', 'import vllm; print(vllm.__version__)']).toString().trim();
console.error('dsd: starting two vLLM servers (about a minute each)');
const vllm = await startVllm({ binDir, modelDir: heavyDir, servedName: 'heavy' });
const vllmSpec = await startVllm({
  binDir,
  modelDir: heavyDir,
  servedName: 'heavy',
  extraArgs: [
    '--speculative-config',
    JSON.stringify({ method: 'draft_model', model: draftDir, num_speculative_tokens: 4 }),
  ],
});
const draft = await startLlamaServer({
  bin: await locateLlamaServer(log),
  modelPath: gguf('stories260K-q4_0.gguf'),
  alias: 'draft',
  threads: 1,
});
const verifier = await startVerifierProcess(['--target-url', vllm.url, '--sequences', '4']);

console.log(
  `\nvLLM ${version} (CPU, f32, 1 engine thread) serving the heavy target; q4_0 draft on llama-server (1 thread) ` +
    `local to dsd; greedy, ${PROMPTS.length} prompts × ${TOKENS} tokens, streamed; the delay proxy sits between ` +
    'the edge and the target side\n',
);
console.log(markdownRow(['one-way ms', 'setup', 'ms / token', 'vs vLLM alone', 'mean acceptance length']));
console.log(markdownRow(['---', '---', '---', '---', '---']));
for (const delay of values.delays.split(',').map(Number)) {
  const [toVllm, toSpec, toVerifier] = await Promise.all(
    [vllm.url, vllmSpec.url, verifier.url].map((u) => delayProxyTo(u, delay)),
  );
  const dsds = {
    adaptive: await startInProcessDsd({ target: { urls: [toVllm!.url] }, draft: { urls: [draft.url] } }),
    fixed: await startInProcessDsd({
      target: { urls: [toVllm!.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 4, windowMin: 4, windowMax: 4 },
    }),
    verifier: await startInProcessDsd(
      { target: { urls: [toVerifier!.url] }, draft: { urls: [draft.url] } },
      { DSD_ACCEPT_ANY_MODEL: 'true' },
    ),
  };
  const setups: Record<string, string> = {
    'client straight from vLLM': toVllm!.url,
    'vLLM’s own speculation (q4_0 draft model, k = 4)': toSpec!.url,
    'dsd → vLLM, adaptive window': dsds.adaptive.url,
    'dsd → vLLM, fixed k = 4': dsds.fixed.url,
    'dsd → verifier → vLLM': dsds.verifier.url,
  };
  const sums = new Map<string, { ms: number; tokens: number; mal: number; n: number }>();
  for (const url of Object.values(setups)) await complete(url, PROMPTS[0]!, 'heavy', TOKENS);
  for (const prompt of PROMPTS)
    for (const [label, url] of Object.entries(setups)) {
      const r = await complete(url, prompt, 'heavy', TOKENS);
      const sum = sums.get(label) ?? { ms: 0, tokens: 0, mal: 0, n: 0 };
      sum.ms += r.ms;
      sum.tokens += r.tokens;
      sum.mal += r.usage?.dsd?.mean_acceptance_length ?? 0;
      sum.n += 1;
      sums.set(label, sum);
    }
  const alone = sums.get('client straight from vLLM')!;
  for (const [label, sum] of sums) {
    const ms = sum.ms / sum.tokens;
    const mal = label.startsWith('dsd') ? (sum.mal / sum.n).toFixed(2) : '—';
    console.log(markdownRow([delay, label, ms.toFixed(2), `${(alone.ms / alone.tokens / ms).toFixed(2)}×`, mal]));
  }
  await Promise.all([...Object.values(dsds).map((d) => d.close()), toVllm!.proxy.close(), toSpec!.proxy.close()]);
  await toVerifier!.proxy.close();
}
verifier.child.kill('SIGTERM');
await Promise.all([vllm.stop(), vllmSpec.stop(), draft.stop()]);
