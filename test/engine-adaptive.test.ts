import { describe, expect, it } from 'vitest';
import { type DraftPort, type DraftSlot, runSpeculation, type TargetPort } from '../src/speculative/engine.js';
import { PairEstimates } from '../src/speculative/estimates.js';
import { adaptivePlanner, fixedPlanner, PROBE_EVERY_TOKENS } from '../src/speculative/planner.js';
import { seededRng } from '../src/speculative/sampling.js';
import { emptyStats } from '../src/speculative/stats.js';

/** Deterministic "model" (next token from the context) and a fake clock the ports advance. */
const next = (ctx: readonly number[]) => (ctx.reduce((a, b) => a + b, 0) * 7 + ctx.length * 13 + 3) % 50;
const PROMPT = [1, 2, 3];

/** k draft tokens after ctx: the model's own token where `agree` says so, another one elsewhere. */
function draftTokens(ctx: readonly number[], k: number, agree: (ctxLength: number) => boolean): { id: number }[] {
  const c = [...ctx];
  const out = [];
  for (let i = 0; i < k; i++) {
    const id = agree(c.length) ? next(c) : (next(c) + 1) % 50;
    c.push(id);
    out.push({ id });
  }
  return out;
}

function world(o: {
  agree: (ctxLength: number) => boolean;
  verifyMs: (positions: number) => number;
  tokenMs: number;
  draftMsPerToken: number;
  failDraftAfter?: number;
}) {
  const clock = { t: 0 };
  const calls = { score: 0, generate: 0, propose: 0 };
  const target: TargetPort = {
    score: async (prompts) => {
      calls.score += 1;
      clock.t += o.verifyMs(prompts.length);
      return prompts.map((p) => ({ id: next(p) }));
    },
    generate: async function* (ctx, maxTokens) {
      calls.generate += 1;
      const c = [...ctx];
      for (let i = 0; i < maxTokens; i++) {
        clock.t += o.tokenMs;
        const id = next(c);
        c.push(id);
        yield { id };
      }
    },
  };
  const draft: DraftPort = {
    propose: async (ctx, k) => {
      calls.propose += 1;
      if (o.failDraftAfter !== undefined && calls.propose > o.failDraftAfter) throw new Error('draft died');
      clock.t += o.draftMsPerToken * k;
      return draftTokens(ctx, k, o.agree);
    },
  };
  return { clock, calls, target, draft };
}

function reference(n: number): number[] {
  const c = [...PROMPT];
  for (let i = 0; i < n; i++) c.push(next(c));
  return c.slice(PROMPT.length);
}

async function run(o: {
  w: ReturnType<typeof world>;
  draft: DraftSlot | undefined;
  maxTokens: number;
  draftAhead?: boolean;
  aheadDepth?: number;
  replaceDraft?: () => Promise<DraftSlot | undefined>;
}) {
  const stats = emptyStats();
  const tokens: number[] = [];
  const sources: ('round' | 'target-only')[] = [];
  const gen = runSpeculation({
    prompt: PROMPT,
    draft: o.draft,
    target: o.w.target,
    rule: 'greedy',
    maxTokens: o.maxTokens,
    contextTokens: 10_000,
    maxPositions: () => 16,
    draftAhead: o.draftAhead ?? false,
    aheadDepth: o.aheadDepth ?? 0,
    isEnd: () => false,
    isValidDraftToken: () => true,
    rng: seededRng(3),
    now: () => o.w.clock.t,
    signal: new AbortController().signal,
    stats,
    ...(o.replaceDraft ? { replaceDraft: o.replaceDraft } : {}),
  });
  for (let step = await gen.next(); !step.done; step = await gen.next()) {
    for (const t of step.value.tokens) {
      tokens.push(t.id);
      sources.push(step.value.source);
    }
  }
  return { tokens, sources, stats };
}

const adaptive = (estimates = new PairEstimates()) =>
  adaptivePlanner(estimates, {
    min: 1,
    max: 8,
    initialK: 4,
    margin: 0.05,
    explore: 0.1,
    draftAhead: false,
    aheadDepth: 0,
    rng: seededRng(9),
    probeEveryTokens: PROBE_EVERY_TOKENS,
  });

describe('adaptive window', () => {
  it('stops speculating when the draft never agrees, and comes back when it does', async () => {
    const flip = PROMPT.length + 300;
    const w = world({ agree: (len) => len >= flip, verifyMs: (n) => 6 + 0.5 * n, tokenMs: 5, draftMsPerToken: 1 });
    const { tokens, sources, stats } = await run({
      w,
      draft: { port: w.draft, planner: adaptive(), name: 'd' },
      maxTokens: 700,
    });
    expect(tokens).toEqual(reference(700));
    const before = sources.slice(50, 300);
    const after = sources.slice(500);
    // Bad draft: (almost) everything comes from the target alone after the first few rounds.
    expect(before.filter((s) => s === 'target-only').length).toBeGreaterThan(0.9 * before.length);
    // Good draft again: speculation is back and commits (almost) everything.
    expect(after.filter((s) => s === 'round').length).toBeGreaterThan(0.9 * after.length);
    expect(stats.targetOnlyTokens).toBeGreaterThan(200);
    // Going target-only is one stream per stretch, not a request per token.
    expect(w.calls.generate).toBeLessThan(10);
  });

  it('never picks speculation when the round trip dominates (RTT-heavy verify)', async () => {
    const w = world({ agree: () => true, verifyMs: (n) => 100 + n, tokenMs: 5, draftMsPerToken: 1 });
    const estimates = new PairEstimates();
    const first = await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 300 });
    expect(first.tokens).toEqual(reference(300));
    // Estimates persist: the next requests on the pair start target-only at once. A probe round
    // costs about 50 ms more than the target-only tokens it displaces (a 100 ms round trip against
    // 5 ms a token), so probes are spaced until that is within PROBE_BUDGET of the pace: about one
    // every 300 target-only tokens here, where PROBE_EVERY_TOKENS alone would probe every 128.
    const rounds: number[] = [];
    for (let i = 0; i < 20; i++) {
      const next = await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 100 });
      expect(next.stats.targetOnlyTokens).toBeGreaterThan(80);
      rounds.push(next.stats.rounds);
    }
    expect(rounds[0]).toBe(0);
    const probes = rounds.reduce((a, b) => a + b, 0);
    expect(probes).toBeGreaterThanOrEqual(1);
    // Each probe is one round; at most one per (50 ms ÷ (5 % × 5 ms)) = 200 tokens.
    expect(probes).toBeLessThanOrEqual(2000 / 200 + 1);
  });

  it('comes back across short requests when rounds get cheaper after a slow start (probes)', async () => {
    // The pair is learned during a slow spell (a start-up burst, a busy target), then rounds get
    // cheap; requests are shorter than the probe period, so only the pair-level count gets there.
    let slow = true;
    const w = world({
      agree: () => true,
      verifyMs: (n) => (slow ? 80 : 6) + 0.5 * n,
      tokenMs: 5,
      draftMsPerToken: 0.5,
    });
    const estimates = new PairEstimates();
    const first = await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 64 });
    expect(first.tokens).toEqual(reference(64));
    slow = false;
    const rounds: number[] = [];
    for (let i = 0; i < 8; i++)
      rounds.push(
        (await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 64 })).stats
          .rounds,
      );
    // Target-only at first (the slow spell priced rounds out), then a probe, then speculation again.
    expect(rounds[0]).toBe(0);
    expect(rounds.slice(-3).every((r) => r > 5)).toBe(true);
  });

  it(
    'a probe much cheaper than predicted probes again at once: a long slow spell is left within a few ' + 'requests',
    async () => {
      let slow = true;
      const w = world({
        agree: () => true,
        verifyMs: (n) => (slow ? 80 : 6) + 0.5 * n,
        tokenMs: 5,
        draftMsPerToken: 0.5,
      });
      const estimates = new PairEstimates();
      // A long slow spell: the verification fit remembers it with its full weight.
      for (let i = 0; i < 6; i++)
        await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 64 });
      slow = false;
      const rounds: number[] = [];
      for (let i = 0; i < 6; i++)
        rounds.push(
          (await run({ w, draft: { port: w.draft, planner: adaptive(estimates), name: 'd' }, maxTokens: 64 })).stats
            .rounds,
        );
      // With one probe per 128 target-only tokens this takes 3 probes, 2 requests apart (rounds from
      // the sixth request on); a surprising probe asks for the next one at the next request.
      const resumed = rounds.findIndex((r) => r > 5);
      expect(resumed).toBeGreaterThanOrEqual(0);
      expect(resumed).toBeLessThanOrEqual(3);
      expect(estimates.recheckDue).toBe(false);
    },
  );

  it('uses a large window when acceptance is high and verification is cheap', async () => {
    const w = world({ agree: () => true, verifyMs: (n) => 20 + 0.2 * n, tokenMs: 20, draftMsPerToken: 0.5 });
    const { stats } = await run({ w, draft: { port: w.draft, planner: adaptive(), name: 'd' }, maxTokens: 400 });
    expect(stats.draftTokens / stats.rounds).toBeGreaterThan(6);
  });
});

describe('draft-ahead', () => {
  it('a perfect draft has its next proposal ready: hits, time saved, same output', async () => {
    const w = world({ agree: () => true, verifyMs: () => 10, tokenMs: 10, draftMsPerToken: 1 });
    const { tokens, stats } = await run({
      w,
      draft: { port: w.draft, planner: fixedPlanner(3), name: 'd' },
      maxTokens: 100,
      draftAhead: true,
    });
    expect(tokens).toEqual(reference(100));
    expect(stats.draftAheadHits).toBeGreaterThan(stats.rounds * 0.8);
    expect(stats.draftAheadSavedMs).toBeGreaterThan(0);
  });

  it('a draft that is often wrong: misses are dropped, output unchanged', async () => {
    const w = world({ agree: (len) => len % 3 !== 0, verifyMs: () => 10, tokenMs: 10, draftMsPerToken: 1 });
    const { tokens, stats } = await run({
      w,
      draft: { port: w.draft, planner: fixedPlanner(3), name: 'd' },
      maxTokens: 100,
      draftAhead: true,
    });
    expect(tokens).toEqual(reference(100));
    expect(stats.draftAheadMisses).toBeGreaterThan(0);
  });
});

/** A world on real timers: a distant target (each score takes `verifyMs`), a local draft. */
function timedWorld(o: { agree: (ctxLength: number) => boolean; verifyMs: number; failEarlyScoreOnce?: boolean }) {
  o = { ...o };
  const calls = { score: 0, concurrentMax: 0 };
  let inFlight = 0;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const target: TargetPort = {
    score: async (prompts) => {
      calls.score += 1;
      inFlight += 1;
      calls.concurrentMax = Math.max(calls.concurrentMax, inFlight);
      const concurrent = inFlight;
      await sleep(o.verifyMs);
      inFlight -= 1;
      if (o.failEarlyScoreOnce && concurrent > 1) {
        o.failEarlyScoreOnce = false;
        throw new Error('503 from the target');
      }
      return prompts.map((p) => ({ id: next(p) }));
    },
    generate: async function* () {},
  };
  const draft: DraftPort = {
    propose: async (ctx, k) => {
      await sleep(1);
      return draftTokens(ctx, k, o.agree);
    },
  };
  return {
    calls,
    target,
    draft,
    get failEarlyScoreOnce() {
      return o.failEarlyScoreOnce;
    },
  };
}

async function timedRun(w: ReturnType<typeof timedWorld>, aheadDepth: number, maxTokens = 60) {
  const stats = emptyStats();
  const tokens: number[] = [];
  const started = performance.now();
  const gen = runSpeculation({
    prompt: PROMPT,
    draft: { port: w.draft, planner: fixedPlanner(4), name: 'd' },
    target: w.target,
    rule: 'greedy',
    maxTokens,
    contextTokens: 10_000,
    maxPositions: () => 16,
    draftAhead: true,
    aheadDepth,
    isEnd: () => false,
    isValidDraftToken: () => true,
    rng: seededRng(3),
    now: () => performance.now(),
    signal: new AbortController().signal,
    stats,
  });
  for (let step = await gen.next(); !step.done; step = await gen.next())
    tokens.push(...step.value.tokens.map((t) => t.id));
  return { tokens, stats, ms: performance.now() - started };
}

describe('draft-ahead with early verification', () => {
  it('a perfect draft: rounds are sent before the previous verdict, output unchanged', async () => {
    const serial = await timedRun(timedWorld({ agree: () => true, verifyMs: 40 }), 0);
    const w = timedWorld({ agree: () => true, verifyMs: 40 });
    const early = await timedRun(w, 2);
    expect(early.tokens).toEqual(reference(60));
    expect(serial.tokens).toEqual(reference(60));
    expect(early.stats.earlyVerifications).toBeGreaterThan(early.stats.rounds / 2);
    expect(w.calls.concurrentMax).toBe(3); // the round being verified + 2 ahead
    expect(early.stats.earlyVerificationsWasted).toBe(0);
  });

  it('a draft that is often wrong: the chain is dropped at a miss, output unchanged', async () => {
    const w = timedWorld({ agree: (len) => len % 7 !== 0, verifyMs: 10 });
    const { tokens, stats } = await timedRun(w, 2);
    expect(tokens).toEqual(reference(60));
    expect(stats.earlyVerificationsWasted).toBeGreaterThan(0);
    expect(stats.draftAheadMisses).toBeGreaterThan(0);
  });

  it('an early round the target failed is sent again, output unchanged', async () => {
    const w = timedWorld({ agree: () => true, verifyMs: 10, failEarlyScoreOnce: true });
    const { tokens } = await timedRun(w, 2);
    expect(w.failEarlyScoreOnce).toBe(false); // the failure did happen
    expect(tokens).toEqual(reference(60));
  });

  it('respects the target positions the generation may hold', async () => {
    const w = timedWorld({ agree: () => true, verifyMs: 10 });
    const stats = emptyStats();
    const gen = runSpeculation({
      prompt: PROMPT,
      draft: { port: w.draft, planner: fixedPlanner(4), name: 'd' },
      target: w.target,
      rule: 'greedy',
      maxTokens: 40,
      contextTokens: 10_000,
      maxPositions: () => 10,
      draftAhead: true,
      aheadDepth: 4,
      isEnd: () => false,
      isValidDraftToken: () => true,
      rng: seededRng(3),
      now: () => performance.now(),
      signal: new AbortController().signal,
      stats,
    });
    for (let step = await gen.next(); !step.done; step = await gen.next());
    expect(w.calls.concurrentMax).toBe(2); // 2 × 5 positions fit in 10
  });
});

describe('draft replacement', () => {
  it('a failing draft is replaced by another within the request; output unchanged', async () => {
    const w = world({ agree: () => true, verifyMs: () => 10, tokenMs: 10, draftMsPerToken: 1, failDraftAfter: 3 });
    const backup = world({ agree: () => true, verifyMs: () => 10, tokenMs: 10, draftMsPerToken: 1 });
    let replaced = 0;
    const { tokens, stats } = await run({
      w,
      draft: { port: w.draft, planner: fixedPlanner(3), name: 'a' },
      maxTokens: 60,
      replaceDraft: async () => {
        replaced += 1;
        return { port: backup.draft, planner: fixedPlanner(3), name: 'b' };
      },
    });
    expect(tokens).toEqual(reference(60));
    expect(replaced).toBe(1);
    expect(backup.calls.propose).toBeGreaterThan(0);
    expect(w.calls.generate).toBe(0);
    expect(stats.fallbackReason).toMatch(/draft a failed: draft died/);
  });
});
