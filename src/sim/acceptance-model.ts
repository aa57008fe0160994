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
