import { describe, expect, it } from 'vitest';
import { LinkFrameError, parseEdgeFrame } from '../src/backends/link/protocol.js';
import {
  alignedPath,
  branchPoints,
  type ChainDrafter,
  draftBranches,
  type ProposalTree,
} from '../src/speculative/draft-tree.js';
import type { DraftSlot, EngineOptions } from '../src/speculative/engine-types.js';
import { GenerationState } from '../src/speculative/generation-state.js';
import { emptyStats } from '../src/speculative/stats.js';
import { createStreamDrafter } from '../src/speculative/stream-drafter.js';
import type { GeneratedToken } from '../src/speculative/types.js';
import { alignedTail } from '../src/verifier/link/assisted-loop.js';

/** A draft token whose runner-up trails it by `gap` nats. */
const tok = (id: number, alt: number, gap: number): GeneratedToken => ({
  id,
  logprob: -0.1,
  top: [
    { id, logprob: -0.1 },
    { id: alt, logprob: -0.1 - gap },
  ],
});

describe('proposal trees', () => {
  const tree: ProposalTree = {
    at: 3,
    main: [10, 11, 12, 13],
    branches: [
      { from: 1, tokens: [21, 22, 23] },
      { from: 2, tokens: [32, 33] },
    ],
  };

  it('the verifier follows the path equal to what it committed, its correction included', () => {
    expect(alignedPath(tree, [0, 1, 2])).toEqual([10, 11, 12, 13]);
    expect(alignedPath(tree, [0, 1, 2, 10, 11])).toEqual([12, 13]);
    // A rejection at index 1 whose correction is the branch's first token: the branch goes on.
    expect(alignedPath(tree, [0, 1, 2, 10, 21])).toEqual([22, 23]);
    expect(alignedPath(tree, [0, 1, 2, 10, 11, 32])).toEqual([33]);
    // Refuted (a correction no branch holds), passed, or from the future: nothing.
    expect(alignedPath(tree, [0, 1, 2, 10, 99])).toBeUndefined();
    expect(alignedPath(tree, [0, 1, 2, 10, 11, 12, 13])).toBeUndefined();
    expect(alignedPath(tree, [0, 1])).toBeUndefined();
    expect(alignedTail({ at: 3, d: tree.main, b: [[1, [21, 22, 23]]] }, [0, 1, 2, 10, 21])).toEqual({
      tail: [22, 23],
      branch: true,
    });
    expect(alignedTail({ at: 3, d: tree.main }, [0, 1, 2, 10])).toEqual({ tail: [11, 12, 13], branch: false });
  });

  it('branches where the draft hesitated most, within the budget', () => {
    const chain = [tok(10, 20, 3), tok(11, 21, 0.2), tok(12, 22, 5), tok(13, 23, 0.5)];
    expect(branchPoints(chain, 2)).toEqual([
      { from: 1, alternative: 21 },
      { from: 3, alternative: 23 },
    ]);
    expect(branchPoints(chain, 0)).toEqual([]);
    expect(branchPoints([{ id: 5 }], 2)).toEqual([]);
  });

  it('drafts the chain with runner-ups, then each branch continued to the chain’s length', async () => {
    // The chain, then its branches: what the stream drafter does between its two frames.
    const draftTree = async (d: ChainDrafter, ctx: number[], n: number, budget: number) => {
      const chain = await d(ctx, n, budget > 0);
      return {
        tree: { at: ctx.length, main: chain.map((t) => t.id), branches: await draftBranches(d, ctx, chain, budget) },
      };
    };
    const asked: { ctx: number[]; n: number; alternatives: boolean }[] = [];
    const draft = async (ctx: readonly number[], n: number, alternatives: boolean) => {
      asked.push({ ctx: [...ctx], n, alternatives });
      const last = ctx.at(-1) ?? 0;
      return Array.from({ length: n }, (_, i) => tok(last + i + 1, 100 + last + i, i === 1 ? 0.1 : 4));
    };
    const { tree: t } = await draftTree(draft, [1, 2], 4, 1);
    expect(t).toEqual({ at: 2, main: [3, 4, 5, 6], branches: [{ from: 1, tokens: [103, 104, 105] }] });
    expect(asked).toEqual([
      { ctx: [1, 2], n: 4, alternatives: true },
      { ctx: [1, 2, 3, 103], n: 2, alternatives: false },
    ]);
    // A branch whose continuation fails is still its runner-up; the chain stands.
    const failing = async (ctx: readonly number[], n: number, alternatives: boolean) =>
      alternatives ? draft(ctx, n, alternatives) : Promise.reject(new Error('slot busy'));
    expect((await draftTree(failing, [1, 2], 4, 1)).tree.branches).toEqual([{ from: 1, tokens: [103] }]);
  });

  it('the prop frame carries branches, bounded and checked like the rest', () => {
    const limits = { vocabSize: 512, maxTokens: 512, maxDraft: 16 };
    const frame = { t: 'prop', s: 1, r: 2, at: 5, d: [1, 2, 3], b: [[1, [7, 8]]] };
    expect(parseEdgeFrame(JSON.stringify(frame), limits)).toEqual(frame);
    const bad = (b: unknown) => () => parseEdgeFrame(JSON.stringify({ ...frame, b }), limits);
    expect(bad([[3, [7]]])).toThrow(LinkFrameError);
    expect(bad([[0, []]])).toThrow(/at least one token/);
    expect(bad([[0, [600]]])).toThrow(/outside the vocabulary/);
    expect(bad(Array.from({ length: 17 }, () => [0, [1]]))).toThrow(/at most 16 branches/);
    expect(bad('x')).toThrow(LinkFrameError);
  });
});

describe('the stream drafter', () => {
  /** Drafts (ids 100+position) with runner-ups 200+position; branch continuations ids 300+. */
  function setup(lead: number, saturated = () => false) {
    const asked: { from: number; n: number; alternatives: number }[] = [];
    const sent: { at: number; d: readonly number[]; b: readonly { from: number; tokens: number[] }[]; w?: number }[] =
      [];
    const port = {
      async propose(ctx: readonly number[], n: number, _s: AbortSignal, alternatives = 0) {
        asked.push({ from: ctx.length, n, alternatives });
        const base = ctx.length === 3 ? 100 : 300;
        // Less sure the further on: the least sure positions are the last ones.
        return Array.from({ length: n }, (_, i) => tok(base + i, 200 + i, 2 - 0.1 * i));
      },
      saturated,
    };
    const stats = emptyStats();
    const state = new GenerationState([0, 1, 2], { maxTokens: 100, contextTokens: 1000, isEnd: () => false }, stats);
    const stream = {
      chunks: (async function* () {})(),
      propose: (at: number, d: readonly number[], b: readonly { from: number; tokens: number[] }[] = [], w?: number) =>
        sent.push({ at, d, b, ...(w === undefined ? {} : { w }) }),
      lead: () => lead,
      paceMs: () => 10,
    };
    const o = {
      stats,
      now: () => 0,
      maxPositions: () => 64,
      treeBranches: 2,
      isValidDraftToken: () => true,
    } as unknown as EngineOptions;
    const drafter = createStreamDrafter({
      o,
      draft: { name: 'd', port } as unknown as DraftSlot,
      stream,
      state,
      signal: new AbortController().signal,
    });
    return { drafter, asked, sent };
  }

  it('sends the chain at once and its tree after, branching only where the target will be', async () => {
    const { drafter, asked, sent } = setup(2);
    drafter.draftFrom(4);
    await new Promise((r) => setTimeout(r, 0));
    // The window plus the lead, and the window travels with it.
    expect(asked[0]).toEqual({ from: 3, n: 6, alternatives: 2 });
    expect(sent[0]).toEqual({ at: 3, d: Array.from({ length: 6 }, (_, i) => 100 + i), b: [], w: 4 });
    // Branches among the first lead + 1 positions (0, 1, 2), the least sure two: 1 and 2.
    expect(sent[1]?.b.map((b) => b.from)).toEqual([1, 2]);
    expect(sent[1]?.b[0]?.tokens.slice(0, 2)).toEqual([201, 300]);
    // Without the chain, which went first: the verifier joins them to it.
    expect(sent[1]?.d).toEqual([]);
  });

  it('next to the target (a lead under one token) it sends chains', async () => {
    const { drafter, sent } = setup(0.5);
    drafter.draftFrom(4);
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toHaveLength(1);
    expect(sent[0]?.b).toEqual([]);
  });

  it('does not queue behind others on a draft whose every slot is busy: it drafts when one frees', async () => {
    let busy = true;
    const { drafter, asked, sent } = setup(2, () => busy);
    drafter.draftFrom(4);
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toHaveLength(0);
    expect(sent).toHaveLength(0);
    busy = false;
    drafter.draftFrom(4);
    await new Promise((r) => setTimeout(r, 0));
    expect(asked[0]).toMatchObject({ from: 3, n: 6 });
  });
});
