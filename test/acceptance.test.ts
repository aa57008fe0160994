import { describe, expect, it } from 'vitest';
import {
  type DraftCandidate,
  type TargetPosition,
  type Verdict,
  verifyByMatch,
  verifyByRejection,
} from '../src/speculative/acceptance.js';
import { type Rng, sampleFrom, seededRng, type TokenProb } from '../src/speculative/sampling.js';

/**
 * Statistical checks of the acceptance rules on synthetic models. A "model" maps a context to a
 * next-token distribution over a 4-token vocabulary. We generate sequences of length L with
 * speculative rounds (window k) and compare the empirical distribution of whole sequences with the
 * exact target distribution by total variation distance (TVD). With N samples over at most 4^L
 * outcomes, the expected TVD of an exact sampler is about sqrt(outcomes / (2πN))·… ≈ 0.02 here; we
 * allow 0.03. A rule that accepts every draft token gives TVD ≈ 0.2–0.4 and must fail.
 */
type Model = (ctx: readonly number[]) => TokenProb[];

const target: Model = (ctx) => {
  const last = ctx[ctx.length - 1] ?? 0;
  const base = [
    [0.6, 0.25, 0.1, 0.05],
    [0.1, 0.2, 0.3, 0.4],
    [0.25, 0.25, 0.25, 0.25],
    [0.05, 0.05, 0.1, 0.8],
  ][last] as number[];
  return base.map((prob, id) => ({ id, prob }));
};
const draftModel: Model = (ctx) => {
  const last = ctx[ctx.length - 1] ?? 0;
  const base = [
    [0.3, 0.4, 0.2, 0.1],
    [0.25, 0.25, 0.25, 0.25],
    [0.1, 0.6, 0.2, 0.1],
    [0.2, 0.2, 0.2, 0.4],
  ][last] as number[];
  return base.map((prob, id) => ({ id, prob }));
};
const argmaxOf = (d: TokenProb[]) => d.reduce((a, b) => (b.prob > a.prob ? b : a)).id;

type Rule = 'match-greedy-draft' | 'match-sampled-draft' | 'rejection' | 'accept-all';

function verifyWith(rule: Rule, draft: DraftCandidate[], tgt: TargetPosition[], rng: Rng): Verdict {
  switch (rule) {
    case 'match-greedy-draft':
    case 'match-sampled-draft':
      return verifyByMatch(draft, tgt);
    case 'rejection':
      return verifyByRejection(draft, tgt, rng);
    case 'accept-all':
      return {
        accepted: draft.length,
        tokens: [...draft.map((d) => d.id), tgt[draft.length]!.sampled],
        bonus: true,
        positions: [],
      };
  }
}

/** Generates one sequence of length L through speculative rounds. */
function generate(rule: Rule, L: number, k: number, rng: Rng): string {
  const ctx: number[] = [0];
  while (ctx.length - 1 < L) {
    const draft: DraftCandidate[] = [];
    const dctx = [...ctx];
    for (let i = 0; i < k; i++) {
      const q = draftModel(dctx);
      const id = rule === 'match-greedy-draft' ? argmaxOf(q) : sampleFrom(q, rng);
      draft.push({ id, dist: q });
      dctx.push(id);
    }
    const tgt: TargetPosition[] = [];
    for (let i = 0; i <= k; i++) {
      const p = target([...ctx, ...draft.slice(0, i).map((d) => d.id)]);
      tgt.push({ sampled: sampleFrom(p, rng), dist: p });
    }
    ctx.push(...verifyWith(rule, draft, tgt, rng).tokens);
  }
  return ctx.slice(1, L + 1).join('');
}

function exactDistribution(L: number): Map<string, number> {
  let seqs = new Map<string, number>([['', 1]]);
  for (let i = 0; i < L; i++) {
    const next = new Map<string, number>();
    for (const [s, p] of seqs) {
      const ctx = [0, ...[...s].map(Number)];
      for (const t of target(ctx)) next.set(s + t.id, p * t.prob);
    }
    seqs = next;
  }
  return seqs;
}

function tvd(rule: Rule, L: number, k: number, n: number, seed: number): number {
  const rng = seededRng(seed);
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = generate(rule, L, k, rng);
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  let d = 0;
  for (const [s, p] of exactDistribution(L)) d += Math.abs(p - (counts.get(s) ?? 0) / n);
  return d / 2;
}

describe('acceptance rules keep the target distribution (seeded, TVD tolerance 0.03)', () => {
  const N = 40_000;
  it.each(['match-greedy-draft', 'match-sampled-draft', 'rejection'] as const)(
    '%s: single positions (L=1, k=3)',
    (rule) => {
      expect(tvd(rule, 1, 3, N, 11)).toBeLessThan(0.03);
    },
  );
  it.each(['match-greedy-draft', 'match-sampled-draft', 'rejection'] as const)(
    '%s: 3-token sequences (L=3, k=2)',
    (rule) => {
      expect(tvd(rule, 3, 2, N, 12)).toBeLessThan(0.03);
    },
  );
  it('a deliberately wrong rule (accept every draft token) fails the same test', () => {
    expect(tvd('accept-all', 3, 2, N, 13)).toBeGreaterThan(0.1);
  });
});

describe('verifyByMatch', () => {
  const d = (...ids: number[]) => ids.map((id) => ({ id }));
  const t = (...ids: number[]) => ids.map((sampled) => ({ sampled }));
  it('accepts the matching prefix and commits the target token at the first mismatch', () => {
    expect(verifyByMatch(d(5, 6, 7), t(5, 6, 9, 1))).toEqual({
      accepted: 2,
      tokens: [5, 6, 9],
      bonus: false,
      positions: [0, 1, 2],
    });
  });
  it('adds the bonus token when all k match', () => {
    expect(verifyByMatch(d(5, 6), t(5, 6, 8))).toMatchObject({ accepted: 2, tokens: [5, 6, 8], bonus: true });
  });
  it('k = 0 commits the target sample', () => {
    expect(verifyByMatch([], t(4))).toMatchObject({ accepted: 0, tokens: [4] });
  });
  it('refuses a shape mismatch', () => {
    expect(() => verifyByMatch(d(1, 2), t(1, 2))).toThrow(/k\+1/);
  });
});

describe('verifyByRejection', () => {
  it('rejection acceptance rate is Σ min(p, q) (≥ Σ p·q of matching)', () => {
    const rng = seededRng(5);
    const p = [
      { id: 0, prob: 0.7 },
      { id: 1, prob: 0.3 },
    ];
    const q = [
      { id: 0, prob: 0.4 },
      { id: 1, prob: 0.6 },
    ];
    let accepted = 0;
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      const x = sampleFrom(q, rng);
      accepted += verifyByRejection(
        [{ id: x, dist: q }],
        [
          { sampled: sampleFrom(p, rng), dist: p },
          { sampled: 0, dist: p },
        ],
        rng,
      ).accepted;
    }
    expect(accepted / n).toBeCloseTo(0.7, 1.5); // Σ min(p,q) = 0.4 + 0.3
  });
});
