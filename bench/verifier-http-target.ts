/**
 * The verifier in front of a llama-server that keeps its own HTTP API, against dsd calling that
 * llama-server over the same link round by round, and a client streaming straight from it; heavy
 * target (1 thread, 9 slots), q4_0 draft (1 thread) local to dsd, greedy, across a delay proxy
 * between the edge and the target side, setups interleaved prompt by prompt.
 *
 *   npm run bench:verifier-http [-- --prompts 5 --tokens 96 --delays 0,10,25]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { delayProxyTo } from '../src/bench/delay-proxy.js';
import { type LlamaProcess, locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';
import { type InProcessDsd, startInProcessDsd } from './in-process-dsd.js';
import { complete, modelName, realModelOptions, startVerifierProcess } from './verifier-common.js';

const { values } = parseArgs({ options: realModelOptions({ prompts: '5', tokens: '96', delays: '0,10,25' }) });
const TOKENS = Number(values.tokens);
const PROMPTS = STORY_PROMPTS.slice(0, Number(values.prompts));
const model = (f: string) => resolve(values.models, f);

const bin = await locateLlamaServer((line) => console.error(line));
const servers: LlamaProcess[] = [];
const heavy = model('stories260K-ff32k-f32.gguf');
const target = await startLlamaServer({ bin, modelPath: heavy, alias: 'heavy', slots: 9, threads: 1 });
servers.push(target);
const draft = await startLlamaServer({ bin, modelPath: model('stories260K-q4_0.gguf'), alias: 'draft', threads: 1 });
servers.push(draft);
const verifier = await startVerifierProcess(['--target-url', target.url, '--sequences', '4']);
const name = await modelName(target.url);

/** Bytes dsd exchanged with its target upstream (HTTP, plus the link for a verifier). */
const wanBytes = (d: InProcessDsd) =>
  d.router.dsd.upstreams
    .links()
    .filter((l) => l.role === 'target')
    .reduce((n, l) => n + l.bytesSent + l.bytesReceived, 0);

console.log(
  `\nheavy llama-server (1 thread, 9 slots) + local q4_0 draft, greedy, ${PROMPTS.length} prompts × ${TOKENS} ` +
    'tokens, streamed; the delay proxy sits between the edge and the target side\n',
);
console.log(markdownRow(['one-way ms', 'setup', 'ms / token', 'vs direct', 'WAN bytes / token']));
console.log(markdownRow(['---', '---', '---', '---', '---']));
for (const delay of values.delays.split(',').map(Number)) {
  const proxies = await Promise.all([target.url, verifier.url].map((url) => delayProxyTo(url, delay)));
  const [toTarget, toVerifier] = proxies as [(typeof proxies)[0], (typeof proxies)[0]];
  const env = { DSD_ACCEPT_ANY_MODEL: 'true' };
  const overHttp = await startInProcessDsd({ target: { urls: [toTarget.url] }, draft: { urls: [draft.url] } }, env);
  const viaVerifier = await startInProcessDsd(
    { target: { urls: [toVerifier.url] }, draft: { urls: [draft.url] } },
    env,
  );
  const setups = {
    'client straight from llama-server': { url: toTarget.url, dsd: undefined },
    'dsd → llama-server, rounds over HTTP': { url: overHttp.url, dsd: overHttp },
    'dsd → verifier → llama-server': { url: viaVerifier.url, dsd: viaVerifier },
  };
  const sums = new Map<string, { ms: number; tokens: number; bytes: number }>();
  for (const s of Object.values(setups)) await complete(s.url, PROMPTS[0]!, name, TOKENS);
  for (const prompt of PROMPTS)
    for (const [label, s] of Object.entries(setups)) {
      const before = s.dsd === undefined ? 0 : wanBytes(s.dsd);
      const r = await complete(s.url, prompt, name, TOKENS);
      const sum = sums.get(label) ?? { ms: 0, tokens: 0, bytes: 0 };
      sum.ms += r.ms;
      sum.tokens += r.tokens;
      sum.bytes += s.dsd === undefined ? 0 : wanBytes(s.dsd) - before;
      sums.set(label, sum);
    }
  const direct = sums.get('client straight from llama-server')!;
  for (const [label, sum] of sums) {
    const ms = sum.ms / sum.tokens;
    const bytes = label.startsWith('dsd') ? (sum.bytes / sum.tokens).toFixed(0) : '—';
    console.log(markdownRow([delay, label, ms.toFixed(2), `${(direct.ms / direct.tokens / ms).toFixed(2)}×`, bytes]));
  }
  await Promise.all([overHttp.close(), viaVerifier.close(), ...proxies.map((p) => p.proxy.close())]);
}
verifier.child.kill('SIGTERM');
await Promise.all(servers.map((s) => s.stop()));
