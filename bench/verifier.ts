/**
 * dsd through `dsd verifier` on the heavy target (stories260K-ff32k-f32, 1 thread) with the q4_0
 * draft on llama-server (1 thread), side by side in one run, setups interleaved prompt by prompt:
 *   (a) llama-server alone, (b) llama-server's own speculation with the same draft,
 *   (c) the verifier alone (its own OpenAI API: the same engine, no draft), (d) dsd → verifier,
 *   with and without tree branches beside draft-ahead, and with the draft embedded in the edge;
 * then across a delay proxy between edge and verifier (a client streaming straight from the
 * verifier over the same link vs dsd), bytes on the link per generated token, and 16 concurrent
 * streams.
 *
 * The verifier's engine is the native one over our llama-server build's libllama
 * (scripts/build-native-engine.sh, cached); `--engine node-llama-cpp` measures node-llama-cpp's
 * binding instead (its local build, scripts/build-engine.sh, unless `--prebuilt`).
 * `--pin` runs the target side (llama-server alone, its own speculation, the verifier) on core 0
 * and the edge (this process: dsd and the clients; the draft server) on core 1, as on two machines.
 *
 *   npm run bench:verifier [-- --prompts 15 --tokens 128 --delays 5,10,25,50 --concurrency 16 --pin
 *                            --engine native|node-llama-cpp --prebuilt --draft FILE.gguf --n-max 2,4,8]
 * `--n-max` takes a list: one llama-server per value, and dsd is compared with the best of them.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { VerifierServer } from '../src/backends/verifier/client.js';
import { DelayProxy } from '../src/bench/delay-proxy.js';
import { type LlamaProcess, locateLlamaServer, pinSelf, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { buildEngine, buildNativeEngine } from '../src/bench/verifier-process.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';
import { type InProcessDsd, startInProcessDsd } from './in-process-dsd.js';
import { complete, modelName, type Result, realModelOptions, startVerifierProcess } from './verifier-common.js';

const { values } = parseArgs({
  options: {
    ...realModelOptions({ prompts: '15', tokens: '128', delays: '5,10,25,50' }),
    'delay-prompts': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    depth: { type: 'string', default: 'auto' },
    mode: { type: 'string', default: 'auto' },
    prebuilt: { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    engine: { type: 'string', default: 'native' },
    draft: { type: 'string', default: 'stories260K-q4_0.gguf' },
    'n-max': { type: 'string', default: '8' },
    trees: { type: 'string', default: '2' },
  },
});
const TARGET_CPUS = values.pin ? '0' : undefined;
const EDGE_CPUS = values.pin ? '1' : undefined;
if (EDGE_CPUS !== undefined) pinSelf(EDGE_CPUS);
const TOKENS = Number(values.tokens);
const PROMPTS = STORY_PROMPTS.slice(0, Number(values.prompts));
const model = (f: string) => resolve(values.models, f);
const HEAVY = model('stories260K-ff32k-f32.gguf');
const DSD = 'dsd → verifier (draft on llama-server)';
const EMBEDDED = 'dsd → verifier (the same draft embedded in the edge: DSD_DRAFT_MODEL)';
const NO_BRANCHES = 'dsd → verifier, no tree branches (DSD_TREE_BRANCHES=0)';
const N_MAX = values['n-max']
  .split(',')
  .map((n) => n.trim())
  .filter((n) => n !== '');
const ownLabel = (n: string) => `llama-server's own speculation (same draft, n-max ${n})`;

const bin = await locateLlamaServer((line) => console.error(line));
const servers: LlamaProcess[] = [];
/** The heavy target on llama-server, one slot, on the target side's core. */
const heavyServer = (extraArgs: string[] = []) =>
  startLlamaServer({ bin, modelPath: HEAVY, alias: 'heavy', slots: 1, threads: 1, cpus: TARGET_CPUS, extraArgs });
const alone = await heavyServer();
servers.push(alone);
// One server per n-max: dsd is compared with the best of them, measured in the same run.
const ownSpecs: { n: string; server: LlamaProcess }[] = [];
for (const n of N_MAX) {
  const spec = ['--spec-type', 'draft-simple', '--spec-draft-model', model(values.draft)];
  const server = await heavyServer([...spec, '--spec-draft-n-max', n, '--threads-draft', '1']);
  servers.push(server);
  ownSpecs.push({ n, server });
}
const draft = await startLlamaServer({
  bin,
  modelPath: model(values.draft),
  alias: 'draft',
  slots: 4,
  threads: 1,
  cpus: EDGE_CPUS,
});
servers.push(draft);
const log = (line: string) => console.error(line);
if (values.engine === 'native') await buildNativeEngine([values.prebuilt ? 'cpu-prebuilt' : 'cpu'], log);
else if (!values.prebuilt) await buildEngine(log);
const verifier = await startVerifierProcess(
  [
    '--model',
    HEAVY,
    '--threads',
    '1',
    '--sequences',
    String(Math.max(4, Number(values.concurrency))),
    '--engine',
    values.engine,
    '--gpu',
    'cpu',
  ],
  { cpus: TARGET_CPUS },
);
const described = (await (await fetch(`${verifier.url}/dsd/verifier`)).json()) as {
  engine_build: string;
  engine: string;
};
const engineBuild = `${described.engine} (${described.engine_build} build)`;

function edge(targetUrl: string, trees = values.trees, env: Record<string, string> = {}): Promise<InProcessDsd> {
  return startInProcessDsd(
    { target: { urls: [targetUrl] }, draft: { urls: [draft.url] } },
    {
      DSD_ACCEPT_ANY_MODEL: 'true',
      DSD_DRAFT_AHEAD_DEPTH: values.depth,
      DSD_VERIFIER_MODE: values.mode,
      DSD_TREE_BRANCHES: trees,
      ...env,
    },
  );
}

const linkOf = (d: InProcessDsd) =>
  (d.router.dsd.upstreams.targets.connected()[0]?.server as VerifierServer | undefined)?.linkCounters;

const f2 = (v: number) => v.toFixed(2);
const out: string[] = [];
const print = (line = '') => {
  out.push(line);
  console.log(line);
};

// ---- (1) side by side at 0 ms -------------------------------------------------------------
const names = {
  alone: await modelName(alone.url),
  own: await modelName(ownSpecs[0]!.server.url),
  verifier: await modelName(verifier.url),
};
const dsd = await edge(verifier.url);
const chainsOnly = await edge(verifier.url, '0');
// The same draft model in the edge's own process (DSD_DRAFT_MODEL), no draft server.
const embedded = await startInProcessDsd(
  { target: { urls: [verifier.url] }, draft: { urls: [] } },
  {
    DSD_ACCEPT_ANY_MODEL: 'true',
    DSD_DRAFT_AHEAD_DEPTH: values.depth,
    DSD_VERIFIER_MODE: values.mode,
    DSD_TREE_BRANCHES: values.trees,
    DSD_DRAFT_MODEL: model(values.draft),
  },
);
const setups: Record<string, (p: string) => Promise<Result>> = {
  'llama-server alone': (p) => complete(alone.url, p, names.alone, TOKENS),
  ...Object.fromEntries(
    ownSpecs.map(({ n, server }) => [ownLabel(n), (p: string) => complete(server.url, p, names.own, TOKENS)]),
  ),
  'verifier alone (same engine, no draft)': (p) => complete(verifier.url, p, names.verifier, TOKENS),
  [DSD]: (p) => complete(dsd.url, p, names.verifier, TOKENS),
  [NO_BRANCHES]: (p) => complete(chainsOnly.url, p, names.verifier, TOKENS),
  [EMBEDDED]: (p) => complete(embedded.url, p, names.verifier, TOKENS),
};
for (const run of Object.values(setups)) await run(PROMPTS[0]!); // warm-up: caches, the planner's first look
const totals = Object.fromEntries(Object.keys(setups).map((k) => [k, { ms: 0, tokens: 0, texts: [] as string[] }]));
let acceptance = 0;
let mal = 0;
const before = { ...linkOf(dsd)! };
// Every other prompt in reverse order: a setup that follows another on the same prompt finds the
// draft server's cache warm with it (it measured 1.10x against 1.035x for the same change).
for (const [i, prompt] of PROMPTS.entries()) {
  const order = Object.entries(setups);
  for (const [name, run] of i % 2 === 0 ? order : order.reverse()) {
    const r = await run(prompt);
    const t = totals[name]!;
    t.ms += r.ms;
    t.tokens += r.tokens;
    t.texts.push(r.text);
    if (name === DSD) {
      acceptance += r.usage?.dsd?.acceptance_rate ?? 0;
      mal += r.usage?.dsd?.mean_acceptance_length ?? 0;
    }
  }
}
const after = linkOf(dsd)!;
const dsdTokens = totals[DSD]!.tokens;
const base = totals['llama-server alone']!;
const baseMs = base.ms / base.tokens;
print(
  `\nheavy target (1 thread) + ${values.draft} draft (1 thread), greedy, ` +
    `${PROMPTS.length} prompts × ${TOKENS} tokens, ` +
    `streamed, interleaved; verifier engine: ${engineBuild}; ` +
    `${values.pin ? 'pinned: target side on core 0, edge on core 1' : 'unpinned'}\n`,
);
print(markdownRow(['setup', 'ms / token', 'vs llama-server alone']));
print(markdownRow(['---', '---', '---']));
for (const [name, t] of Object.entries(totals))
  print(markdownRow([name, f2(t.ms / t.tokens), `${f2(baseMs / (t.ms / t.tokens))}×`]));
const vAlone = totals['verifier alone (same engine, no draft)']!;
const viaDsd = totals[DSD]!;
// llama-server's best own speculation of the n-max values run.
const own = ownSpecs
  .map(({ n }) => totals[ownLabel(n)]!)
  .reduce((best, t) => (t.ms / t.tokens < best.ms / best.tokens ? t : best));
const same = (a: string[], b: string[]) => a.filter((t, i) => t === b[i]).length;
print(
  `\ndsd vs the verifier alone: ${same(viaDsd.texts, vAlone.texts)}/${PROMPTS.length} texts identical; ` +
    `vs llama-server alone: ${same(viaDsd.texts, base.texts)}/${PROMPTS.length}; ` +
    `dsd vs llama-server's ${N_MAX.length > 1 ? 'best ' : ''}own speculation: ` +
    `${f2(own.ms / own.tokens / (viaDsd.ms / viaDsd.tokens))}×; ` +
    `acceptance ${f2(acceptance / PROMPTS.length)}, mean acceptance length ${f2(mal / PROMPTS.length)}`,
);
for (const [i, text] of viaDsd.texts.entries())
  if (text !== vAlone.texts[i])
    print(`  prompt ${i + 1} differs: ${await nearTie(PROMPTS[i]!, text, vAlone.texts[i]!)}`);
const inEdge = totals[EMBEDDED]!;
const chains = totals[NO_BRANCHES]!;
print(
  `tree branches beside draft-ahead: ${f2(chains.ms / chains.tokens / (viaDsd.ms / viaDsd.tokens))}× dsd without ` +
    `them; ${same(chains.texts, vAlone.texts)}/${PROMPTS.length} texts identical to the verifier alone without them`,
);
print(
  `embedded draft: ${same(inEdge.texts, vAlone.texts)}/${PROMPTS.length} texts identical to the verifier alone; ` +
    `${f2(viaDsd.ms / viaDsd.tokens / (inEdge.ms / inEdge.tokens))}× the llama-server draft, ` +
    `${f2(own.ms / own.tokens / (inEdge.ms / inEdge.tokens))}× llama-server's own speculation`,
);
const sent = after.bytesSent - before.bytesSent;
const received = after.bytesReceived - before.bytesReceived;
print(
  `link bytes per generated token (WebSocket frames, both directions, session opens included): ` +
    `${f2((sent + received) / dsdTokens)} (${f2(sent / dsdTokens)} up, ${f2(received / dsdTokens)} down)`,
);

/** Where two continuations of `prompt` part, and the verifier's own top-2 margin there (nats). */
async function nearTie(prompt: string, a: string, b: string): Promise<string> {
  const tokenize = async (content: string, special: boolean) =>
    (
      (await (
        await fetch(`${verifier.url}/tokenize`, {
          method: 'POST',
          body: JSON.stringify({ content, add_special: special }),
        })
      ).json()) as { tokens: number[] }
    ).tokens;
  const [ctx, x, y] = [await tokenize(prompt, true), await tokenize(a, false), await tokenize(b, false)];
  let at = 0;
  while (at < x.length && x[at] === y[at]) at++;
  const r = await fetch(`${verifier.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: names.verifier,
      prompt: [...ctx, ...x.slice(0, at)],
      max_tokens: 1,
      temperature: 0,
      logprobs: 2,
    }),
  });
  const top = ((await r.json()) as { choices: { logprobs?: { top_logprobs?: Record<string, number>[] } }[] }).choices[0]
    ?.logprobs?.top_logprobs?.[0];
  const lps = Object.values(top ?? {}).sort((p, q) => q - p);
  const margin = lps.length >= 2 ? (lps[0]! - lps[1]!).toFixed(5) : 'unknown';
  return `first different token at output position ${at}; the verifier's top-2 margin there alone: ${margin} nats`;
}

// ---- (2) bytes per token by context length ------------------------------------------------
const story = vAlone.texts.join(' ');
for (const words of [60, 180]) {
  const prompt = story.split(/\s+/).slice(0, words).join(' ');
  const b0 = { ...linkOf(dsd)! };
  const r = await complete(dsd.url, prompt, names.verifier, 64);
  const b1 = linkOf(dsd)!;
  const promptTokens = (
    (await (
      await fetch(`${verifier.url}/tokenize`, {
        method: 'POST',
        body: JSON.stringify({ content: prompt, add_special: true }),
      })
    ).json()) as { tokens: number[] }
  ).tokens.length;
  const total = b1.bytesSent - b0.bytesSent + b1.bytesReceived - b0.bytesReceived;
  const open = promptTokens * 4 + 80;
  print(
    `context ${promptTokens} tokens: ${f2(total / r.tokens)} bytes per generated token on the link ` +
      `(${f2((total - open) / r.tokens)} without the session's opening frame of ≈ ${open} bytes), ${r.tokens} tokens`,
  );
}
await dsd.close();
await embedded.close();
await chainsOnly.close();

// ---- (3) across a delay proxy between edge and verifier: chains against trees ---------------
const port = Number(new URL(verifier.url).port);
print(
  `\n${values.mode === 'auto' ? '' : `DSD_VERIFIER_MODE=${values.mode}; `}trees: ${values.trees} branches; ` +
    'bytes: per generated token, both ways: TCP payload through the relay (everything: HTTP, frames, pings) ' +
    "and the link's WebSocket frames (the edge's counters); binary link (dsd-link.3) unless JSON\n",
);
print(
  markdownRow([
    'one-way delay ms',
    'client straight from the verifier ms/token',
    'dsd, chains',
    'dsd, trees',
    'trees vs chains',
    'branch steps',
    'TCP bytes/token chains, trees, trees on JSON',
    'link frame bytes/token chains, trees, trees on JSON',
    'texts identical',
  ]),
);
print(markdownRow(['---', '---', '---', '---', '---', '---', '---', '---', '---']));
for (const delay of values.delays.split(',').filter(Boolean).map(Number)) await acrossDelay(delay);

async function acrossDelay(delay: number): Promise<void> {
  const proxy = new DelayProxy({ targetHost: '127.0.0.1', targetPort: port, oneWayDelayMs: delay });
  const proxyUrl = await proxy.listen();
  const chains = await edge(proxyUrl, '0');
  const trees = await edge(proxyUrl);
  const treesOnJson = await edge(proxyUrl, values.trees, { DSD_TARGET_LINK_ENCODING: 'json' });
  const prompts = PROMPTS.slice(0, Number(values['delay-prompts']));
  for (const e of [chains, trees, treesOnJson]) await complete(e.url, prompts[0]!, names.verifier, TOKENS);
  const sum = () => ({ ms: 0, tokens: 0, bytes: 0, tcpBytes: 0, branches: 0, texts: [] as string[] });
  const totals = { direct: sum(), chains: sum(), trees: sum(), json: sum() };
  const bytes = (e: InProcessDsd) => {
    const c = linkOf(e);
    return c === undefined ? 0 : c.bytesSent + c.bytesReceived;
  };
  for (const p of prompts) {
    const runs: [keyof typeof totals, string, InProcessDsd | undefined][] = [
      ['direct', proxyUrl, undefined],
      ['chains', chains.url, chains],
      ['trees', trees.url, trees],
      ['json', treesOnJson.url, treesOnJson],
    ];
    for (const [name, url, e] of runs) {
      const before = e === undefined ? 0 : bytes(e);
      const tcpBefore = proxy.stats.bytes;
      const r = await complete(url, p, names.verifier, TOKENS);
      totals[name].tcpBytes += proxy.stats.bytes - tcpBefore;
      const t = totals[name];
      t.ms += r.ms;
      t.tokens += r.tokens;
      t.texts.push(r.text);
      t.branches += r.usage?.dsd?.tree_branch_steps ?? 0;
      if (e !== undefined) t.bytes += bytes(e) - before;
    }
  }
  const per = (t: { ms: number; tokens: number }) => t.ms / t.tokens;
  const [direct, viaChains, viaTrees] = [per(totals.direct), per(totals.chains), per(totals.trees)];
  const same = totals.trees.texts.filter((t, i) => t === totals.direct.texts[i]).length;
  print(
    markdownRow([
      delay,
      f2(direct),
      `${f2(viaChains)} (${f2(direct / viaChains)}×)`,
      `${f2(viaTrees)} (${f2(direct / viaTrees)}×)`,
      `${f2(viaChains / viaTrees)}×`,
      totals.trees.branches,
      [totals.chains, totals.trees, totals.json].map((t) => f2(t.tcpBytes / t.tokens)).join(', '),
      [totals.chains, totals.trees, totals.json].map((t) => f2(t.bytes / t.tokens)).join(', '),
      `${same}/${prompts.length}`,
    ]),
  );
  await chains.close();
  await trees.close();
  await treesOnJson.close();
  await proxy.close();
}

// ---- (4) concurrent sessions (--concurrency 0 skips them) ---------------------------------
const concurrency = Number(values.concurrency);
if (concurrency > 0) await concurrentStreams();

async function concurrentStreams(): Promise<void> {
  const busy = await edge(verifier.url);
  const wave = async (url: string) => {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: concurrency }, (_, i) =>
        complete(url, STORY_PROMPTS[i % STORY_PROMPTS.length]!, names.verifier, TOKENS),
      ),
    );
    return results.reduce((n, r) => n + r.tokens, 0) / ((performance.now() - started) / 1000);
  };
  await wave(busy.url);
  // Three pairs of waves, interleaved: one wave's rate swings by a third on this machine, and the
  // median of the pairs' ratios is what bench:under-load reports too.
  const pairs: { alone: number; dsd: number }[] = [];
  for (let i = 0; i < 3; i++) pairs.push({ alone: await wave(verifier.url), dsd: await wave(busy.url) });
  const ratios = pairs.map((p) => p.dsd / p.alone);
  const median = [...ratios].sort((a, b) => a - b)[1]!;
  print(
    `\n${concurrency} concurrent streams, 3 pairs of waves: verifier alone ` +
      `${pairs.map((p) => p.alone.toFixed(0)).join(' / ')} tokens/s, dsd → verifier ` +
      `${pairs.map((p) => p.dsd.toFixed(0)).join(' / ')} tokens/s: ` +
      `${f2(median)}× (median; ${ratios.map(f2).join(', ')})`,
  );
  await busy.close();
}

verifier.child.kill('SIGTERM');
await Promise.all(servers.map((s) => s.stop()));
