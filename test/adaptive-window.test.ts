import { describe, expect, it } from 'vitest';
import { AdaptiveWindow } from '../src/speculative/adaptive-window.js';
import { chainHitMs } from '../src/speculative/chain-cost.js';
import { PairEstimates } from '../src/speculative/estimates.js';
import { seededRng } from '../src/speculative/sampling.js';

/** Estimates of a pair behind a 50 ms round trip: verification 63 + k ms, draft 0.6 ms/token, α 0.9. */
function distantPair(): PairEstimates {
  const e = new PairEstimates();
  const rng = seededRng(5);
  for (let i = 0; i < 200; i++) {
    const k = 2 + (i % 8);
    let accepted = 0;
    while (accepted < k && rng() < 0.9) accepted += 1;
    e.observeRound({ drafted: k, accepted, draftMs: 0.6 * k, draftWorkMs: 0.6 * k, verifyMs: 63 + k });
    e.observeShadow(k, accepted, 0.6 * k);
  }
  for (let i = 0; i < 20; i++) e.observeTargetOnlyGap(12);
  return e;
}

const window = (e: PairEstimates, aheadDepth: number) =>
  new AdaptiveWindow(e, {
    min: 1,
    max: 16,
    initialK: 4,
    margin: 0.05,
    explore: 0,
    draftAhead: true,
    aheadDepth,
    rng: seededRng(1),
  });

describe('adaptive window with early verification', () => {
  it('a distant batching target: rounds sent ahead are predicted much faster than one round per round trip', () => {
    const e = distantPair();
    const serial = window(e, 0).best();
    const ahead = window(e, 2).best();
    expect(ahead?.aheadDepth).toBeGreaterThan(0);
    expect(ahead?.msPerToken).toBeLessThan(0.85 * (serial?.msPerToken as number));
    expect(window(e, 2).decide()).toMatchObject({ kind: 'speculate', aheadDepth: ahead?.aheadDepth });
  });

  it(
    'a target that runs early rounds on the same cores (waits as long as a whole verification) is priced ' +
      'back to no early rounds',
    () => {
      const e = distantPair();
      for (let i = 0; i < 100; i++)
        e.observeRound({
          drafted: 6,
          accepted: 6,
          draftMs: 0,
          draftWorkMs: 3.6,
          verifyMs: 69,
          early: { depth: 2, waitMs: 69 },
        });
      expect(e.aheadSlowdown.value).toBeGreaterThan(2.5);
      const d = window(e, 2).decide();
      expect(d.kind === 'target-only' || d.aheadDepth === 0).toBe(true);
    },
  );

  it(
    'early verdicts that came back in bursts (measured waits far below the model) do not make chains look ' + 'free',
    () => {
      // Rounds sent together answer together: most early rounds wait ~0 after the previous verdict,
      // and misses cut chains before the one long wait that ends a burst.
      const e = distantPair();
      for (let i = 0; i < 100; i++)
        e.observeRound({
          drafted: 6,
          accepted: 6,
          draftMs: 0,
          draftWorkMs: 3.6,
          verifyMs: 69,
          early: { depth: 2, waitMs: 1 },
        });
      expect(e.aheadSlowdown.value).toBeLessThan(0.2);
      const w = window(e, 2);
      // Each round of a chain is priced at its own wait (chainHitMs), never scaled below it.
      const verify = e.verifyMsAt(6) as number;
      const draft = e.draftMs.predict(6) as number;
      const hit = e.hitProbability(6);
      const model =
        (1 - hit) * (draft + verify) +
        chainHitMs({ hit, nextDraftMs: e.draftMs.predict(7) as number, verifyMs: verify, depth: 2 });
      expect(w.predict(6, 2)?.roundMs).toBeCloseTo(model, 6);
    },
  );

  it('chain cost: h·max(δ, V) with nothing sent early, the throughput bound max(δ, V/(d+1)) for endless chains', () => {
    expect(chainHitMs({ hit: 0.5, nextDraftMs: 3, verifyMs: 60, depth: 0 })).toBeCloseTo(0.5 * 60, 9);
    expect(chainHitMs({ hit: 0.5, nextDraftMs: 80, verifyMs: 60, depth: 0 })).toBeCloseTo(0.5 * 80, 9);
    expect(chainHitMs({ hit: 1, nextDraftMs: 3, verifyMs: 60, depth: 2 })).toBeCloseTo(20, 9);
    expect(chainHitMs({ hit: 1 - 1e-7, nextDraftMs: 3, verifyMs: 60, depth: 2 })).toBeCloseTo(20, 3);
    expect(chainHitMs({ hit: 1, nextDraftMs: 30, verifyMs: 60, depth: 2 })).toBeCloseTo(30, 9);
    // Short chains (h = 0.3): mostly the draft time, far below V/(d+1).
    const short = chainHitMs({ hit: 0.3, nextDraftMs: 3, verifyMs: 60, depth: 2 }) / 0.3;
    expect(short).toBeGreaterThan(3);
    expect(short).toBeLessThan(8);
  });

  it('predictions never get worse with depth, and the smallest depth within 2 % is chosen', () => {
    const e = distantPair();
    const w = window(e, 4);
    for (const k of [2, 4, 8]) {
      const byDepth = [0, 1, 2, 3, 4].map((d) => w.predict(k, d)?.msPerToken as number);
      for (let d = 1; d < byDepth.length; d++) expect(byDepth[d]).toBeLessThanOrEqual(byDepth[d - 1] as number);
    }
    const best = w.best();
    expect(best).toBeDefined();
    const deeper = w.predict(best?.k as number, (best?.aheadDepth as number) + 1);
    if (best !== undefined && best.aheadDepth < 4)
      expect(deeper?.msPerToken).toBeGreaterThan(best.msPerToken / 1.02 - 1e-9);
  });
});

describe('resuming rounds from a target-only stream', () => {
  it('drops the stream only when the rest of the generation repays the round trip it costs', async () => {
    const { paysToResume } = await import('../src/speculative/target-only-stretch.js');
    const d = {
      kind: 'speculate' as const,
      k: 4,
      reason: '',
      switchEconomics: { savedMsPerToken: 0.9, switchMs: 113 },
    };
    expect(paysToResume(d, 100)).toBe(false); // 90 ms saved < 113 ms
    expect(paysToResume(d, 200)).toBe(true);
    expect(paysToResume({ kind: 'target-only', reason: '', settled: true }, 1000)).toBe(false);
  });
});

describe('adaptive window on a loaded batching target', () => {
  /**
   * Steps of 40 ms back to back: a round whose draft and round trip fit in one step is verified in
   * the next (80 ms); from k = 6 on, the draft makes it miss that step and wait one more (120 ms).
   */
  function cliffPair(): PairEstimates {
    const e = new PairEstimates();
    const rng = seededRng(9);
    for (let i = 0; i < 400; i++) {
      const k = 3 + (i % 6);
      let accepted = 0;
      while (accepted < k && rng() < 0.8) accepted += 1;
      const verifyMs = (k >= 6 ? 120 : 80) + 10 * (rng() - 0.5);
      e.observeRound({ drafted: k, accepted, draftMs: 2 * k, draftWorkMs: 2 * k, verifyMs });
    }
    for (let i = 0; i < 20; i++) e.observeTargetOnlyGap(40);
    return e;
  }

  it('prices the step a larger window misses, which a line through all k smears over its neighbours', () => {
    const e = cliffPair();
    for (const k of [4, 5]) expect(Math.abs((e.verifyMsAt(k) as number) - 80)).toBeLessThan(5);
    for (const k of [6, 7]) expect(Math.abs((e.verifyMsAt(k) as number) - 120)).toBeLessThan(5);
    // The line alone is off by 10 ms or more next to the cliff, either side of it.
    expect(e.verifyMs.predict(6)! - 80).toBeGreaterThan(10);
    expect(120 - e.verifyMs.predict(7)!).toBeGreaterThan(10);
    expect(window(e, 0).best()?.k).toBe(5);
  });

  it('a fresh worker adopting the snapshot predicts the same', () => {
    const warm = cliffPair();
    const cold = new PairEstimates();
    expect(cold.adopt(JSON.parse(JSON.stringify(warm.snapshot())))).toBe(true);
    for (const k of [3, 5, 6, 8]) expect(cold.verifyMsAt(k)).toBeCloseTo(warm.verifyMsAt(k) as number, 9);
  });
});
