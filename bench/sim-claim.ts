/**
 * The claim to test: distributed speculative decoding gives "up to 40 % lower end-to-end latency
 * than single-node speculative decoding in heterogeneous environments". On the shipped
 * heterogeneous scenario, DSD (adaptive, draft-ahead) against single-node SD, over the RTT and
 * over what a draft step costs on the target's device. Prints e2e p50 ratios and crossover RTTs.
 *
 *   npm run bench:sim-claim [-- --ahead-depth 2]   (DSD with early verification, d rounds ahead)
 */
import { parseArgs } from 'node:util';
import { simulate } from '../src/sim/run.js';
import { loadScenario } from '../src/sim/sim-command.js';
import { applySweep } from '../src/sim/sweep.js';

const base = loadScenario(new URL('../examples/sim/heterogeneous-edge-cloud.json', import.meta.url).pathname);
const { values } = parseArgs({ options: { 'ahead-depth': { type: 'string', default: '0' } } });
const aheadDepth = Number(values['ahead-depth']);
base.strategies = [
  { kind: 'single-node', k: 4, draftMsPerToken: 2.5 },
  { kind: 'dsd-adaptive', draftAhead: true, aheadDepth },
];
const rtts = [0, 5, 10, 16, 24, 32, 48];
const nodeDraft = [2.5, 5, 10, 20];
console.log(
  `\nDSD adaptive (+ draft-ahead${aheadDepth > 0 ? `, ${aheadDepth} rounds verified early` : ''}) e2e p50 / ` +
    `single-node SD e2e p50 on "${base.name}" (below 1: DSD faster; ≤ 0.60: the 40 % claim holds)\n`,
);
console.log(`| single-node draft step (ms) | ${rtts.map((r) => `RTT ${r} ms`).join(' | ')} | crossover RTT |`);
console.log(`|---|${rtts.map(() => '---').join('|')}|---|`);
for (const d of nodeDraft) {
  const ratios = rtts.map((rtt) => {
    const [single, dsd] = simulate(applySweep(applySweep(base, 'node-draft-ms', d), 'rtt', rtt));
    return (dsd as { e2eMs: { p50: number } }).e2eMs.p50 / (single as { e2eMs: { p50: number } }).e2eMs.p50;
  });
  // Linear interpolation of the RTT where the ratio crosses 1.
  let crossover = 'none in range';
  for (let i = 1; i < rtts.length; i++) {
    const [a, b] = [ratios[i - 1] as number, ratios[i] as number];
    if ((a - 1) * (b - 1) <= 0 && a !== b) {
      const [lo, hi] = [rtts[i - 1] as number, rtts[i] as number];
      crossover = `${(lo + ((1 - a) / (b - a)) * (hi - lo)).toFixed(1)} ms`;
    }
  }
  if (ratios.every((r) => r < 1)) crossover = `> ${rtts.at(-1)} ms`;
  if (ratios.every((r) => r >= 1)) crossover = 'DSD never faster';
  console.log(`| ${d} | ${ratios.map((r) => `${r.toFixed(2)}${r <= 0.6 ? ' ✓' : ''}`).join(' | ')} | ${crossover} |`);
}
