import { describe, expect, it } from 'vitest';
import { BranchAhead } from '../src/speculative/branch-ahead.js';
import { type DraftPort, runSpeculation, type TargetPort } from '../src/speculative/engine.js';
import { fixedPlanner } from '../src/speculative/planner.js';
import { seededRng } from '../src/speculative/sampling.js';
import { emptyStats } from '../src/speculative/stats.js';
import type { GeneratedToken } from '../src/speculative/types.js';

/** The target: next token from the context's sum and length, mod 40 (never the EOS the test does not use). */
const next = (ctx: readonly number[]) => (ctx.reduce((a, b) => a + b, 0) * 7 + ctx.length * 13 + 3) % 40;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A draft wrong at every context length divisible by 3, where it hesitates (its top two 0.1 nats
 * apart) and its runner-up is the target's token; elsewhere right and sure. It takes `msPerToken`.
 */
function hesitantDraft(msPerToken: number): DraftPort & { calls: number } {
  const port = {
    calls: 0,
    async propose(ctx: readonly number[], k: number, _signal: AbortSignal, alternatives = 0) {
      port.calls += 1;
      await sleep(msPerToken * k);
      const c = [...ctx];
      const out: GeneratedToken[] = [];
      for (let i = 0; i < k; i++) {
        const right = next(c);
        const wrong = c.length % 3 === 0;
        const id = wrong ? (right + 1) % 40 : right;
        const other = wrong ? right : (right + 2) % 40;
        const t: GeneratedToken = { id };
        if (alternatives > 0)
          t.top = [
            { id, logprob: -0.6 },
            { id: other, logprob: wrong ? -0.7 : -5 },
          ];
        c.push(id);
        out.push(t);
      }
      return out;
    },
  };
  return port;
}

function slowTarget(ms: number): TargetPort {
  return {
    score: async (prompts) => {
      await sleep(ms);
      return prompts.map((p) => ({ id: next(p) }));
    },
    generate: async function* () {},
  };
}

function reference(prompt: number[], n: number): number[] {
  const c = [...prompt];
  for (let i = 0; i < n; i++) c.push(next(c));
  return c.slice(prompt.length);
}

describe('branches drafted ahead of a verdict (rounds)', () => {
  it('fit as many as the draft can make while the target verifies, beside draft-ahead', async () => {
    const stats = emptyStats();
    const branches = () => new BranchAhead(stats);
    const noDraft = async () => undefined;
    const round = (draftWorkMs: number, verifyMs: number) => ({
      ctx: [1],
      proposal: [{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }],
      draftWorkMs,
      sentAt: 0,
      doneAt: Promise.resolve(verifyMs),
    });
    const fast = branches();
    expect(fast.affordable(4, 2)).toBe(0); // nothing measured yet
    fast.start(noDraft, round(4, 20), 4, 2);
    const slow = branches();
    slow.start(noDraft, round(16, 20), 4, 2);
    await Promise.resolve();
    // 1 ms a draft token, 20 ms a verification: draft-ahead's k+1 = 5, then 15 ms: 3 branches of 4 (2 asked).
    expect(fast.affordable(4, 2)).toBe(2);
    // 4 ms a token: draft-ahead alone fills the verification.
    expect(slow.affordable(4, 2)).toBe(0);
  });

  it('a rejection its runner-up covered finds the next proposal ready: same text, less draft wait', async () => {
    const run = async (treeBranches: number) => {
      const stats = emptyStats();
      const draft = hesitantDraft(0.25);
      const tokens: number[] = [];
      const gen = runSpeculation({
        prompt: [1, 2, 3],
        draft: { port: draft, planner: fixedPlanner(4), name: 'draft' },
        target: slowTarget(30),
        rule: 'greedy',
        draftAhead: true,
        aheadDepth: 0,
        treeBranches,
        maxTokens: 60,
        contextTokens: 1000,
        maxPositions: () => 8,
        isEnd: () => false,
        isValidDraftToken: () => true,
        rng: seededRng(1),
        now: () => performance.now(),
        signal: new AbortController().signal,
        stats,
      });
      for (let r = await gen.next(); !r.done; r = await gen.next()) tokens.push(...r.value.tokens.map((t) => t.id));
      return { tokens, stats };
    };
    const chains = await run(0);
    const trees = await run(1);
    expect(trees.tokens).toEqual(reference([1, 2, 3], 60));
    expect(chains.tokens).toEqual(trees.tokens);
    expect(trees.stats.treeBranches).toBeGreaterThan(0);
    expect(trees.stats.treeBranchSteps).toBeGreaterThan(3);
    // Each branch taken is a round that did not wait for a fresh draft.
    expect(trees.stats.draftMs).toBeLessThan(chains.stats.draftMs);
    expect(chains.stats.treeBranchSteps).toBe(0);
  });
});
