import type { GeneratedToken } from './types.js';

/**
 * A proposal tree rooted at context position `at`: the draft's main chain, and branches where the
 * draft was least sure. A branch leaves the chain at `from` (the chain's tokens before it are its
 * own) with the draft's next choice there, continued. On the wire: `b: [[from, tokens], …]`.
 */
export interface ProposalTree {
  at: number;
  main: number[];
  branches: { from: number; tokens: number[] }[];
}

/**
 * The path of a tree that equals what the target committed up to `committed` (the context's
 * length), and the drafts on it beyond that: the main chain, or the branch that starts with the
 * target's own correction. Undefined when no path lines up (the tree is stale or refuted). Of
 * several that line up, the one with the most drafts left.
 */
export function alignedPath(tree: ProposalTree, ctx: readonly number[]): number[] | undefined {
  return bestAlignedPath(tree, ctx)?.tail;
}

/** alignedPath, and whether the path it found is a branch (the chain lost or did not line up). */
export function bestAlignedPath(
  tree: ProposalTree,
  ctx: readonly number[],
): { tail: number[]; branch: boolean } | undefined {
  const passed = ctx.length - tree.at;
  if (passed < 0) return undefined;
  let best: { tail: number[]; branch: boolean } | undefined;
  const consider = (path: readonly number[], branch: boolean) => {
    if (passed >= path.length) return;
    for (let i = 0; i < passed; i++) if (path[i] !== ctx[tree.at + i]) return;
    if (best === undefined || path.length - passed > best.tail.length) best = { tail: path.slice(passed), branch };
  };
  consider(tree.main, false);
  for (const b of tree.branches) consider([...tree.main.slice(0, b.from), ...b.tokens], true);
  return best;
}

/**
 * How sure the draft was of its token: the gap in logprob to its runner-up (small where it
 * hesitated); undefined without a runner-up.
 */
export function hesitationGap(t: GeneratedToken): { gap: number; runnerUp: number } | undefined {
  const runnerUp = t.top?.find((alt) => alt.id !== t.id);
  if (runnerUp === undefined) return undefined;
  const own = t.logprob ?? t.top?.find((alt) => alt.id === t.id)?.logprob ?? 0;
  return { gap: own - runnerUp.logprob, runnerUp: runnerUp.id };
}

/**
 * Where to branch: of the chain's first `within` positions, those whose top-1 the draft was least
 * sure of, with their runner-up.
 */
export function branchPoints(
  chain: readonly GeneratedToken[],
  budget: number,
  within = chain.length,
): { from: number; alternative: number }[] {
  const candidates: { from: number; alternative: number; sureness: number }[] = [];
  chain.slice(0, within).forEach((t, from) => {
    const h = hesitationGap(t);
    if (h !== undefined) candidates.push({ from, alternative: h.runnerUp, sureness: h.gap });
  });
  return candidates
    .sort((a, b) => a.sureness - b.sureness)
    .slice(0, Math.max(0, budget))
    .sort((a, b) => a.from - b.from)
    .map(({ from, alternative }) => ({ from, alternative }));
}

/** What the tree drafter asks of a draft: a chain continuing `ctx`, with runner-ups when asked. */
export type ChainDrafter = (ctx: readonly number[], n: number, alternatives: boolean) => Promise<GeneratedToken[]>;

/**
 * The branches of a tree whose chain is `chain` (drafted from `ctx`, with runner-ups): each of the
 * `budget` least sure of its first `within` positions continued from its runner-up to the chain's
 * length, drafted concurrently (a draft server batches them as sequences of one step). A branch
 * that fails is left out: the chain alone is still a proposal.
 */
export function draftBranches(
  draft: ChainDrafter,
  ctx: readonly number[],
  chain: readonly GeneratedToken[],
  budget: number,
  within = chain.length,
): Promise<ProposalTree['branches']> {
  const main = chain.map((t) => t.id);
  return Promise.all(
    branchPoints(chain, budget, within).map(async ({ from, alternative }) => {
      const rest = main.length - from - 1;
      const base = [...ctx, ...main.slice(0, from), alternative];
      const tail = rest > 0 ? await draft(base, rest, false).catch(() => [] as GeneratedToken[]) : [];
      return { from, tokens: [alternative, ...tail.map((t) => t.id)] };
    }),
  );
}
