/**
 * What proposal trees can cover, measured on the models' own tokens: the target's greedy text for
 * each prompt (the small f32 target, which computes the heavy target's function), and the q4_0
 * draft's top 4 at every position of it (llama-server `n_probs`). Reports the draft's per-position
 * acceptance, how often the target's token is its 2nd or 3rd choice when the top-1 misses, and the
 * share of s-token stretches (the tokens the target makes while a proposal travels) that a chain
 * and a tree with `branchPoints`' own placement line up with, branches anywhere in the proposal or
 * only among its first s + 1 positions (what the stream drafter does).
 *
 *   npm run bench:tree-coverage [-- --prompts 15 --tokens 128 --length 8]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { locateLlamaServer, startLlamaServer } from '../src/bench/llama-process.js';
import { markdownRow } from '../src/bench/markdown.js';
import { branchPoints, hesitationGap } from '../src/speculative/draft-tree.js';
import type { GeneratedToken } from '../src/speculative/types.js';
import { STORY_PROMPTS } from '../test/fixtures-prompts.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: resolve(import.meta.dirname, '../../shared/models') },
    prompts: { type: 'string', default: '15' },
    tokens: { type: 'string', default: '128' },
    length: { type: 'string', default: '8' },
  },
});
type Prob = { id: number; logprob: number };
const post = async <T>(url: string, body: unknown): Promise<T> =>
  (await (await fetch(url, { method: 'POST', body: JSON.stringify(body) })).json()) as T;

const bin = await locateLlamaServer((line) => console.error(line));
const model = (f: string) => resolve(values.models, f);
const target = await startLlamaServer({
  bin,
  modelPath: model('stories260K-f32.gguf'),
  alias: 't',
  slots: 1,
  threads: 1,
});
const draft = await startLlamaServer({
  bin,
  modelPath: model('stories260K-q4_0.gguf'),
  alias: 'd',
  slots: 1,
  threads: 1,
});

/** Per prompt, per position of the target's text: its token and the draft's top 4 there. */
const texts: { truth: number; draft: GeneratedToken }[][] = [];
for (const prompt of STORY_PROMPTS.slice(0, Number(values.prompts))) {
  const { tokens: ids } = await post<{ tokens: number[] }>(`${target.url}/tokenize`, {
    content: prompt,
    add_special: true,
  });
  const out = await post<{ completion_probabilities: { id: number }[] }>(`${target.url}/completion`, {
    prompt: ids,
    n_predict: Number(values.tokens),
    temperature: 0,
    n_probs: 1,
  });
  const truth = out.completion_probabilities.map((p) => p.id);
  const row: { truth: number; draft: GeneratedToken }[] = [];
  for (let i = 0; i < truth.length; i++) {
    const d = await post<{ completion_probabilities: { top_logprobs: Prob[] }[] }>(`${draft.url}/completion`, {
      prompt: [...ids, ...truth.slice(0, i)],
      n_predict: 1,
      temperature: 0,
      n_probs: 4,
    });
    const top = d.completion_probabilities[0]?.top_logprobs ?? [];
    row.push({ truth: truth[i]!, draft: { id: top[0]!.id, logprob: top[0]!.logprob, top } });
  }
  texts.push(row);
}
await target.stop();
await draft.stop();

const positions = texts.flat();
const misses = positions.filter((p) => p.draft.id !== p.truth);
const rank = (p: (typeof positions)[number]) => p.draft.top?.findIndex((t) => t.id === p.truth) ?? -1;
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const share = (f: (p: (typeof positions)[number]) => boolean) => pct(misses.filter(f).length / misses.length);
console.log(
  `${positions.length} positions: the draft's top-1 is the target's token ` +
    `${pct(1 - misses.length / positions.length)} of the time; of the misses the target's token is ` +
    `its 2nd choice ${share((p) => rank(p) === 1)}, 2nd or 3rd ${share((p) => rank(p) === 1 || rank(p) === 2)}\n`,
);

/**
 * Whether a proposal of `n` tokens from each position lines up with the target's next `s` tokens:
 * the chain, or one branch (the runner-up where the first miss is, chosen by branchPoints among
 * the first `within` positions), whose own tokens are the draft's from the corrected context.
 */
function lineUp(s: number, n: number, budget: number, within: number): number {
  let ok = 0;
  let all = 0;
  for (const row of texts)
    for (let a = 0; a + n <= row.length; a++) {
      all++;
      const w = row.slice(a, a + n);
      const missAt = w.slice(0, s).findIndex((p) => p.draft.id !== p.truth);
      if (missAt < 0) {
        ok++;
        continue;
      }
      const points = branchPoints(
        w.map((p) => p.draft),
        budget,
        within,
      );
      const branch = points.find((b) => b.from === missAt);
      const restRight = w.slice(missAt + 1, s).every((p) => p.draft.id === p.truth);
      if (branch !== undefined && branch.alternative === w[missAt]!.truth && restRight) ok++;
    }
  return ok / all;
}

const n = Number(values.length);
const head = [
  'tokens the target makes before it arrives',
  'chain',
  '2 branches anywhere',
  '2 in the lead',
  '4 in the lead',
];
console.log(markdownRow(head));
console.log(markdownRow(head.map(() => '---')));
for (const s of [2, 3, 4, 5, 6]) {
  const cells = [lineUp(s, n, 0, n), lineUp(s, n, 2, n), lineUp(s, n, 2, s + 1), lineUp(s, n, 4, s + 1)];
  console.log(markdownRow([String(s), ...cells.map(pct)]));
}

// Branches only where the draft hesitated: of the misses a branch could cover (the target's token is
// the draft's 2nd choice), how many sit below each gap, and what share of all positions does.
const gapOf = (p: (typeof positions)[number]) => hesitationGap(p.draft)?.gap ?? Number.POSITIVE_INFINITY;
const coverable = misses.filter((p) => rank(p) === 1);
console.log(`\n${markdownRow(['gap below (nats)', 'coverable misses', 'all positions'])}`);
console.log(markdownRow(['---', '---', '---']));
for (const gap of [0.5, 1, 1.5, 2, 3, 4, 6]) {
  const below = (xs: typeof positions) => xs.filter((p) => gapOf(p) < gap).length / xs.length;
  console.log(markdownRow([String(gap), pct(below(coverable)), pct(below(positions))]));
}
