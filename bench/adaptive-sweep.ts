/**
 * Emulated sweep of the adaptive window: RTT to the target × acceptance × draft/target cost ratio.
 * In every cell, side by side in one run: a client calling the target directly over the same link
 * (streaming), dsd with the adaptive window, dsd with fixed k (the best in hindsight), and the
 * analytic optimum of the cost model. Also draft-ahead on/off at acceptance 0.9.
 *
 *   npm run bench:adaptive [-- --tokens 128 --requests 3 --concurrency 3]
 */
import { parseArgs } from 'node:util';
import { markdownRow } from '../src/bench/markdown.js';
import { analyticOptimum, type CellCosts, startEmulatedPair, timedCompletion } from './emulated-pair.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '128' },
    requests: { type: 'string', default: '3' },
    rtts: { type: 'string', default: '0,10,25,50,100' },
    acceptances: { type: 'string', default: '0.5,0.7,0.9' },
    ratios: { type: 'string', default: '0.05,0.2' },
    fixed: { type: 'string', default: '1,2,3,4,6,8' },
    'step-ms': { type: 'string', default: '12' },
    concurrency: { type: 'string', default: '3' },
  },
});
const TOKENS = Number(values.tokens);
const REQUESTS = Number(values.requests);
const STEP = Number(values['step-ms']);
const FIXED = values.fixed.split(',').map(Number);
const PROMPTS = [
  'Once upon a time',
  'One day, a little girl named Lily',
  'The sun was warm',
  'Tom and Max went to the park.',
  'The old car was sad',
];

interface CellResult {
  cell: CellCosts & { ratio: number };
  direct: number;
  adaptive: number;
  adaptiveNoAhead: number | undefined;
  k4NoAhead: number | undefined;
  fixed: Record<number, number>;
  optimum: ReturnType<typeof analyticOptimum>;
  adaptiveRounds: number;
  adaptiveTargetOnly: number;
}

async function runCell(cell: CellCosts & { ratio: number }): Promise<CellResult> {
  const pair = await startEmulatedPair(cell);
  try {
    const configs: Record<string, string> = { direct: pair.proxy.url };
    configs.adaptive = (await pair.dsd({ window: 'auto', draftAhead: true })).url;
    if (cell.acceptance === 0.9 && cell.rttMs >= 25) {
      configs.adaptiveNoAhead = (await pair.dsd({ window: 'auto', draftAhead: false })).url;
      configs.k4NoAhead = (await pair.dsd({ window: 4, draftAhead: false })).url;
    }
    for (const k of FIXED) configs[`k${k}`] = (await pair.dsd({ window: k, draftAhead: true })).url;
    // One warm-up request per setup (connections, kind detection, vocabulary check): a proxy runs
    // for days, and its one-off start-up is not what this sweep measures.
    for (const url of Object.values(configs)) await timedCompletion(url, 'Lily and Tom', 16);
    const totals: Record<string, { ms: number; tokens: number }> = {};
    let rounds = 0;
    let targetOnly = 0;
    for (let r = 0; r < REQUESTS; r++) {
      for (const prompt of PROMPTS) {
        for (const [name, url] of Object.entries(configs)) {
          const t = await timedCompletion(url, prompt, TOKENS);
          const acc = (totals[name] ??= { ms: 0, tokens: 0 });
          acc.ms += t.ms;
          acc.tokens += t.tokens;
          if (name === 'adaptive' && t.usage?.dsd) {
            rounds += t.usage.dsd.rounds;
            targetOnly += t.usage.dsd.target_only_tokens;
          }
        }
      }
    }
    const per = (name: string) => (totals[name] ? totals[name].ms / totals[name].tokens : Number.NaN);
    return {
      cell,
      direct: per('direct'),
      adaptive: per('adaptive'),
      adaptiveNoAhead: configs.adaptiveNoAhead ? per('adaptiveNoAhead') : undefined,
      k4NoAhead: configs.k4NoAhead ? per('k4NoAhead') : undefined,
      fixed: Object.fromEntries(FIXED.map((k) => [k, per(`k${k}`)])),
      optimum: analyticOptimum(cell, TOKENS),
      adaptiveRounds: rounds,
      adaptiveTargetOnly: targetOnly,
    };
  } finally {
    await pair.close();
  }
}

const cells: (CellCosts & { ratio: number })[] = [];
for (const ratio of values.ratios.split(',').map(Number)) {
  for (const acceptance of values.acceptances.split(',').map(Number)) {
    for (const rttMs of values.rtts.split(',').map(Number)) {
      cells.push({
        ratio,
        acceptance,
        rttMs,
        stepMs: STEP,
        perPositionMs: 1,
        perRequestMs: 1,
        draftMsPerToken: ratio * STEP,
      });
    }
  }
}
const results: CellResult[] = [];
const queue = [...cells];
const started = Date.now();
await Promise.all(
  Array.from({ length: Number(values.concurrency) }, async () => {
    for (let cell = queue.shift(); cell !== undefined; cell = queue.shift()) {
      results.push(await runCell(cell));
      process.stderr.write(`\r${results.length}/${cells.length} cells, ${Math.round((Date.now() - started) / 1000)} s`);
    }
  }),
);
process.stderr.write('\n');
results.sort(
  (a, b) => a.cell.ratio - b.cell.ratio || a.cell.acceptance - b.cell.acceptance || a.cell.rttMs - b.cell.rttMs,
);

const f = (v: number) => v.toFixed(2);
console.log(
  `\nEmulated sweep: target step ${STEP} ms (+1 ms per request, +1 ms per scored position), ${TOKENS} tokens ` +
    `× ${PROMPTS.length} prompts × ${REQUESTS}, greedy; ms per token\n`,
);
console.log(
  markdownRow([
    'c',
    'α',
    'RTT ms',
    'direct',
    'dsd adaptive',
    'adaptive vs direct',
    'best fixed k (hindsight)',
    'adaptive vs best fixed',
    'analytic optimum (k)',
    'rounds / target-only tokens',
  ]),
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
let minVsDirect = Infinity;
let minVsFixed = Infinity;
for (const r of results) {
  const [bestK, bestMs] = Object.entries(r.fixed).reduce((a, b) => (b[1] < a[1] ? b : a));
  const vsDirect = r.direct / r.adaptive;
  const vsFixed = Math.min(bestMs, r.direct) / r.adaptive;
  minVsDirect = Math.min(minVsDirect, vsDirect);
  minVsFixed = Math.min(minVsFixed, vsFixed);
  console.log(
    markdownRow([
      r.cell.ratio,
      r.cell.acceptance,
      r.cell.rttMs,
      f(r.direct),
      f(r.adaptive),
      `${f(vsDirect)}×`,
      `${f(bestMs)} (k=${bestK})`,
      `${f(vsFixed)}×`,
      `${f(r.optimum.best)} ` +
        `(${r.optimum.bestK === 0 ? 'target alone' : `k=${r.optimum.bestK}, ${r.optimum.bestDepth} ahead`})`,
      `${r.adaptiveRounds} / ${r.adaptiveTargetOnly}`,
    ]),
  );
}
console.log(
  `\nworst cell: adaptive = ${minVsDirect.toFixed(3)}× the direct client's speed; ${minVsFixed.toFixed(3)}× ` +
    `the best of (fixed k in hindsight, direct)`,
);
console.log('\nDraft-ahead at α = 0.9, with vs without in the same run (ms per token):\n');
console.log('| c | RTT ms | adaptive without | adaptive with | cut | k=4 without | k=4 with | cut |');
console.log('|---|---|---|---|---|---|---|---|');
const cut = (without: number, withAhead: number) => `${(100 * (1 - withAhead / without)).toFixed(1)} %`;
for (const r of results.filter((x) => x.adaptiveNoAhead !== undefined)) {
  const a = r.adaptiveNoAhead as number;
  const k = r.k4NoAhead as number;
  console.log(
    markdownRow([
      r.cell.ratio,
      r.cell.rttMs,
      f(a),
      f(r.adaptive),
      cut(a, r.adaptive),
      f(k),
      f(r.fixed[4] as number),
      cut(k, r.fixed[4] as number),
    ]),
  );
}
