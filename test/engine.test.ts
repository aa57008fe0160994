import { describe, expect, it } from 'vitest';
import { type DraftPort, type EngineOptions, runSpeculation, type TargetPort } from '../src/speculative/engine.js';
import { fixedPlanner } from '../src/speculative/planner.js';
import { seededRng } from '../src/speculative/sampling.js';
import { emptyStats, type SpeculationStats } from '../src/speculative/stats.js';
import type { GeneratedToken } from '../src/speculative/types.js';

/** A deterministic "model": next token from the context's sum and length, mod 50; 49 is EOS. */
const next = (ctx: readonly number[]) => (ctx.reduce((a, b) => a + b, 0) * 7 + ctx.length * 13 + 3) % 50;
const EOS = 49;

function targetPort(calls: { score: number; generate: number; prompts: number[][][] }): TargetPort {
  return {
    score: async (prompts) => {
      calls.score += 1;
      calls.prompts.push(prompts.map((p) => [...p]));
      return prompts.map((p) => ({ id: next(p) }));
    },
    generate: async function* (ctx, maxTokens) {
      calls.generate += 1;
      const c = [...ctx];
      for (let i = 0; i < maxTokens; i++) {
        const id = next(c);
        c.push(id);
        yield { id };
      }
    },
  };
}

/** A draft right `accuracy` of the time (deterministically by position), failing after `failAfter` calls. */
function draftPort(o: { wrongEvery?: number; failAfter?: number; badId?: boolean }): DraftPort & { calls: number } {
  const port = {
    calls: 0,
    propose: async (ctx: readonly number[], k: number) => {
      port.calls += 1;
      if (o.failAfter !== undefined && port.calls > o.failAfter) throw new Error('connection reset');
      const c = [...ctx];
      const out: GeneratedToken[] = [];
      for (let i = 0; i < k; i++) {
        let id = next(c);
        if (o.wrongEvery !== undefined && (c.length + i) % o.wrongEvery === 0) id = (id + 1) % 49;
        if (o.badId) id = 100_000;
        c.push(id);
        out.push({ id });
      }
      return out;
    },
  };
  return port;
}

function reference(prompt: number[], n: number, stopAtEos = true): number[] {
  const c = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = next(c);
    c.push(id);
    out.push(id);
    if (stopAtEos && id === EOS) break;
  }
  return out;
}

const slotOf = (port: DraftPort | undefined, k = 4) =>
  port === undefined ? undefined : { port, planner: fixedPlanner(k), name: 'draft' };

async function collect(
  o: Partial<Omit<EngineOptions, 'draft'>> & { draft: DraftPort | undefined; target: TargetPort; k?: number },
) {
  const stats: SpeculationStats = emptyStats();
  const failures: string[] = [];
  const { draft, k, ...rest } = o;
  const gen = runSpeculation({
    prompt: [1, 2, 3],
    rule: 'greedy',
    draftAhead: false,
    aheadDepth: 0,
    maxTokens: 40,
    contextTokens: 1000,
    maxPositions: () => 16,
    isEnd: (t) => t.id === EOS,
    isValidDraftToken: (id) => id >= 0 && id < 50,
    rng: seededRng(1),
    now: () => 0,
    signal: new AbortController().signal,
    stats,
    onDraftFailure: (_slot, reason) => failures.push(reason),
    ...rest,
    draft: slotOf(draft, k),
  });
  const tokens: number[] = [];
  let step = await gen.next();
  for (; !step.done; step = await gen.next()) tokens.push(...step.value.tokens.map((t) => t.id));
  return { tokens, result: step.value, stats, failures };
}

describe('runSpeculation', () => {
  it('greedy output equals the target alone; stats add up', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    const { tokens, stats, result } = await collect({ draft: draftPort({ wrongEvery: 5 }), target: targetPort(calls) });
    expect(tokens).toEqual(reference([1, 2, 3], 40).slice(0, tokens.length));
    expect(tokens.length === 40 || tokens.at(-1) === EOS).toBe(true);
    expect(stats.rounds).toBe(calls.score);
    expect(stats.roundTokens).toBe(tokens.length);
    expect(stats.acceptedTokens).toBeGreaterThan(0);
    expect(stats.acceptedTokens).toBeLessThan(stats.draftTokens);
    expect(result.finish === 'length' || result.finish === 'stop').toBe(true);
  });

  it('scores k+1 prompts [ctx, ctx+d1, …] in one batch and never overshoots max_tokens', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    const { tokens } = await collect({
      draft: draftPort({}),
      target: targetPort(calls),
      maxTokens: 7,
      isEnd: () => false,
    });
    expect(tokens).toHaveLength(7);
    const first = calls.prompts[0]!;
    expect(first).toHaveLength(5);
    expect(first[0]).toEqual([1, 2, 3]);
    expect(first[4]!.slice(0, 3)).toEqual([1, 2, 3]);
    expect(first[4]).toHaveLength(7);
    // The second round may only draft 1 token: 7 − 5 committed = 2 left, a round commits k+1.
    expect(calls.prompts[1]).toHaveLength(2);
  });

  it('a target scoring only the leading drafts (a shared verifier): same output, rounds of that window', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    const full = targetPort(calls);
    // Like a shared verifier: of k drafts it verifies only the first, so it answers 2 positions.
    const target: TargetPort = { ...full, score: async (prompts, signal) => full.score(prompts.slice(0, 2), signal) };
    const { tokens, stats } = await collect({ draft: draftPort({ wrongEvery: 7 }), target, k: 4 });
    expect(tokens).toEqual(reference([1, 2, 3], 40).slice(0, tokens.length));
    expect(tokens.length === 40 || tokens.at(-1) === EOS).toBe(true);
    expect(stats.draftTokens).toBe(stats.rounds);
    expect(stats.acceptedTokens).toBeGreaterThan(0);
  });

  it('a streaming target that declines whole proposals: the edge drafts less often, output unchanged', async () => {
    // The target decodes alone, one token per chunk; `declines` says whether it turns proposals down.
    const streaming = (declines: boolean): TargetPort => ({
      ...targetPort({ score: 0, generate: 0, prompts: [] }),
      assist: (ctx, maxTokens) => {
        let pending = 0;
        return {
          propose: (_at, drafts) => {
            pending = drafts.length;
          },
          chunks: (async function* () {
            const c = [...ctx];
            for (let i = 0; i < maxTokens; i++) {
              await new Promise((r) => setImmediate(r));
              const id = next(c);
              c.push(id);
              const offered = pending;
              pending = 0;
              yield declines || offered === 0
                ? { tokens: [{ id }], drafted: 0, accepted: 0, declined: offered }
                : { tokens: [{ id }], drafted: 1, accepted: 0 };
            }
          })(),
        };
      },
    });
    const declined = draftPort({});
    const refused = await collect({ draft: declined, target: streaming(true), isEnd: () => false });
    const used = draftPort({});
    await collect({ draft: used, target: streaming(false), isEnd: () => false });
    expect(refused.tokens).toEqual(reference([1, 2, 3], 40, false));
    // 40 chunks: a draft after nearly every one when proposals are used, about log₂ of that when not.
    expect(used.calls).toBeGreaterThan(25);
    expect(declined.calls).toBeLessThan(10);
  });

  it('rounds go over to the stream when streamNow turns true, from what they committed', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    let rounds = 0;
    let streamedFrom: number | undefined;
    const base = targetPort(calls);
    const target: TargetPort = {
      ...base,
      score: async (prompts, signal) => {
        rounds += 1;
        return base.score(prompts, signal);
      },
      streamNow: () => rounds >= 3,
      assist: (ctx, maxTokens) => {
        streamedFrom = ctx.length;
        return {
          propose: () => {},
          chunks: (async function* () {
            const c = [...ctx];
            for (let i = 0; i < maxTokens; i++) {
              const id = next(c);
              c.push(id);
              yield { tokens: [{ id }], drafted: 0, accepted: 0 };
            }
          })(),
        };
      },
    };
    const { tokens } = await collect({ draft: draftPort({}), target, k: 4, isEnd: () => false });
    expect(tokens).toEqual(reference([1, 2, 3], 40, false));
    expect(rounds).toBe(3);
    // Three rounds of k = 4, all accepted: 15 tokens after the 3-token prompt.
    expect(streamedFrom).toBe(3 + 15);
  });

  it('a streaming target that verifies only some drafts: the edge proposes what it verifies', async () => {
    const windows: number[] = [];
    const target: TargetPort = {
      ...targetPort({ score: 0, generate: 0, prompts: [] }),
      assist: (ctx, maxTokens) => {
        let pending = 0;
        return {
          propose: (_at, drafts, _branches, window) => {
            pending = Math.min(drafts.length, window ?? drafts.length);
            windows.push(pending);
          },
          chunks: (async function* () {
            const c = [...ctx];
            for (let i = 0; i < maxTokens; i++) {
              await new Promise((r) => setImmediate(r));
              const id = next(c);
              c.push(id);
              // Like a shared verifier: of the drafts in hand it verifies one (not counted as
              // accepted here: the test is about what the edge proposes) and declines the rest.
              const offered = pending;
              pending = 0;
              yield offered === 0
                ? { tokens: [{ id }], drafted: 0, accepted: 0 }
                : { tokens: [{ id }], drafted: 1, accepted: 0, declined: offered - 1 };
            }
          })(),
        };
      },
    };
    const { tokens } = await collect({ draft: draftPort({}), target, k: 4, isEnd: () => false });
    expect(tokens).toEqual(reference([1, 2, 3], 40, false));
    expect(windows[0]).toBe(4);
    // After the first decline the window is what was verified, growing by one a full step, then
    // cut again: it never goes back to 4 while the target keeps declining.
    expect(Math.max(...windows.slice(2))).toBeLessThanOrEqual(2);
  });

  it('caps k by the target batch size', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    await collect({
      draft: draftPort({}),
      target: targetPort(calls),
      maxPositions: () => 3,
      maxTokens: 10,
      isEnd: () => false,
    });
    expect(Math.max(...calls.prompts.map((p) => p.length))).toBe(3);
  });

  it('stops at the end token and commits nothing after it', async () => {
    const prompt = [4]; // reaches EOS after 13 tokens
    const ref = reference(prompt, 500);
    expect(ref.at(-1)).toBe(EOS);
    const { tokens, result } = await collect({
      prompt,
      draft: draftPort({}),
      target: targetPort({ score: 0, generate: 0, prompts: [] }),
      maxTokens: 500,
    });
    expect(tokens).toEqual(ref);
    expect(result.finish).toBe('stop');
  });

  it('a draft dying mid-request: output unchanged, rest generated target-only in one stream', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    const { tokens, stats, failures } = await collect({
      draft: draftPort({ failAfter: 2 }),
      target: targetPort(calls),
      isEnd: () => false,
    });
    expect(tokens).toEqual(reference([1, 2, 3], 40, false));
    expect(failures[0]).toMatch(/draft failed: connection reset/);
    expect(stats.fallbackReason).toMatch(/connection reset/);
    expect(calls.generate).toBe(1);
    expect(stats.targetOnlyTokens).toBe(40 - stats.roundTokens);
  });

  it('a draft returning ids outside the vocabulary is dropped before the target sees them', async () => {
    const calls = { score: 0, generate: 0, prompts: [] as number[][][] };
    const { tokens, failures } = await collect({
      draft: draftPort({ badId: true }),
      target: targetPort(calls),
      isEnd: () => false,
    });
    expect(tokens).toEqual(reference([1, 2, 3], 40, false));
    expect(failures[0]).toMatch(/outside the vocabulary/);
    expect(calls.prompts.flat(2)).not.toContain(100_000);
  });

  it('the client signal aborts the request in flight', async () => {
    let aborted = false;
    const controller = new AbortController();
    const slowTarget: TargetPort = {
      score: (_prompts, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(signal.reason);
          });
        }),
      generate: async function* () {},
    };
    const gen = runSpeculation({
      prompt: [1],
      draft: slotOf(draftPort({}), 2),
      target: slowTarget,
      rule: 'greedy',
      draftAhead: false,
      aheadDepth: 0,
      maxTokens: 5,
      contextTokens: 100,
      maxPositions: () => 8,
      isEnd: () => false,
      isValidDraftToken: () => true,
      rng: seededRng(1),
      now: () => 0,
      signal: controller.signal,
      stats: emptyStats(),
    });
    const pending = gen.next();
    setTimeout(() => controller.abort(new Error('client gone')), 5);
    await expect(pending).rejects.toThrow('client gone');
    expect(aborted).toBe(true);
  });
});
