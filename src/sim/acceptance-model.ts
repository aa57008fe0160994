import { type Verdict, verifyByMatch } from '../speculative/acceptance.js';
import { PositionAcceptance } from '../speculative/estimates.js';
import type { Rng } from '../speculative/sampling.js';
import type { AcceptanceSpec } from './scenario.js';

/**
 * Acceptance in the simulator. Each round builds draft and target token sequences whose agreement
 * follows the scenario (i.i.d., per position, or rates replayed from a proxy trace) and verifies
 * them with the proxy's own rule (verifyByMatch), so the simulator commits exactly what the proxy
 * would.
 */
export class AcceptanceModel {
  private readonly rates: (i: number) => number;

  constructor(
    spec: AcceptanceSpec,
    private readonly rng: Rng,
  ) {
    switch (spec.kind) {
      case 'iid':
        this.rates = () => spec.rate;
        break;
      case 'per-position':
        this.rates = (i) => spec.rates[Math.min(i, spec.rates.length - 1)] ?? 0;
        break;
      case 'trace': {
        // The proxy's own per-position estimator, without forgetting, over the recorded rounds.
        const positions = new PositionAcceptance(1);
        for (const r of spec.rounds) positions.add(r.k, r.accepted);
        this.rates = (i) => positions.rate(i) ?? 0;
        break;
      }
    }
  }

  /** Conditional acceptance at draft position i (0-based). */
  rate(i: number): number {
    return this.rates(i);
  }

  /** One verification of k draft tokens. */
  round(k: number): Verdict {
    // Plain loops: this runs every simulated round, and Array.from's callbacks showed in profiles.
    const target: { sampled: number }[] = [];
    const draft: { id: number }[] = [];
    for (let i = 0; i < k; i++) {
      target.push({ sampled: 1000 + i });
      draft.push({ id: this.rng() < this.rate(i) ? 1000 + i : 1 });
    }
    target.push({ sampled: 1000 + k });
    return verifyByMatch(draft, target);
  }

  /** Whether the draft's guess of the bonus token after k accepted tokens is right. */
  bonusGuessRight(k: number): boolean {
    return this.rng() < this.rate(k);
  }
}

/**
 * What a greedy draft gets right along one generation, position by position. A greedy draft is
 * deterministic: given the right context it makes the same guess at a position however often it is
 * asked, so every proposal that reaches a position where its top choice is wrong fails there
 * (drawing each proposal's luck afresh let a later proposal slip past an earlier one's miss, which
 * overstated the stream by 15 % at 10 ms). At each position the draft is right with the acceptance
 * at its first draft position; where it is wrong, its runner-up is the target's token with
 * probability `runnerUpCoverage`.
 */
export class GreedyDraftSequence {
  private readonly topRight: boolean[] = [];
  private readonly runnerUpRight: boolean[] = [];

  constructor(
    private readonly acceptance: AcceptanceModel,
    private readonly rng: Rng,
    private readonly runnerUpCoverage: number,
  ) {}

  private draw(x: number): void {
    while (this.topRight.length <= x) {
      const top = this.rng() < this.acceptance.rate(0);
      this.topRight.push(top);
      this.runnerUpRight.push(!top && this.rng() < this.runnerUpCoverage);
    }
  }

  /**
   * Leading drafts right of a proposal of `length` drafted after `at` committed tokens (its i-th
   * draft is generated token at + i), up to `branches` misses covered by a branch's runner-up.
   */
  matched(at: number, length: number, branches: number): number {
    this.draw(at + length);
    let used = 0;
    for (let i = 0; i < length; i++) {
      if (this.topRight[at + i] === true) continue;
      if (used < branches && this.runnerUpRight[at + i] === true) {
        used += 1;
        continue;
      }
      return i;
    }
    return length;
  }
}
