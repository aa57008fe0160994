import { PositionAcceptance } from './estimates.js';

/** What the shared-target rule reads of an acceptance estimate (draftsWorthVerifying). */
export interface AcceptanceView {
  /** Effective proposals behind the estimate; the rule keeps out of it below 8. */
  readonly weight: number;
  /** Expected tokens a proposal of j drafts commits, the bonus included. */
  expectedTokens(j: number): number;
  /** True when the rule should try the generation with one draft rather than shut it out. */
  readonly exploring?: boolean;
}

/** Proposals of the pair's that a generation's own estimate starts from. */
const PAIR_PRIOR_WEIGHT = 2;
/** One generation's own memory: about its last twenty verified proposals. */
const OWN_DECAY = 0.95;
/** Steps verifying none of its drafts after which a generation is tried with one draft again. */
const EXPLORE_AFTER_STEPS = 8;

/**
 * One generation's acceptance as a shared target verifies it: its own proposals, shrunk toward
 * the pair's (all generations of the connection) while it has few. Under load the shared-target
 * rule then admits drafts by what each generation has shown: one that drafts well keeps its
 * window, one whose drafts the target keeps rejecting stops being verified (and its edge stops
 * drafting), where one pair-wide estimate gave both the same window, and a poor generation could
 * pull the pair below the bar for all. A generation that is not verified learns nothing, so after
 * every EXPLORE_AFTER_STEPS such steps it is tried with one draft: a good one shut out by the
 * pair's estimate shows what it is, and a poor one costs one position of a shared step now and then.
 */
export class GenerationAcceptance implements AcceptanceView {
  private readonly own = new PositionAcceptance(OWN_DECAY);
  private unverifiedSteps = 0;

  constructor(private readonly pair: PositionAcceptance) {}

  /** A verified proposal: `drafted` drafts, the first `accepted` of them accepted. */
  add(drafted: number, accepted: number): void {
    this.own.add(drafted, accepted);
    this.pair.add(drafted, accepted);
    this.unverifiedSteps = 0;
  }

  /** A step that verified none of this generation's drafts (declined, or none lined up). */
  unverified(): void {
    this.unverifiedSteps += 1;
  }

  /** A step's outcome: `verified` drafts, the first `accepted` of them accepted (none: unverified). */
  observe(verified: number, accepted: number): void {
    if (verified > 0) this.add(verified, accepted);
    else this.unverified();
  }

  get exploring(): boolean {
    return this.unverifiedSteps >= EXPLORE_AFTER_STEPS;
  }

  /** The pair's weight: whether the rule may act at all is the pair's evidence, not one generation's. */
  get weight(): number {
    return this.pair.weight;
  }

  expectedTokens(j: number): number {
    const w = this.own.weight;
    const pair = this.pair.expectedTokens(j);
    if (w < 1e-9) return pair;
    return (w * this.own.expectedTokens(j) + PAIR_PRIOR_WEIGHT * pair) / (w + PAIR_PRIOR_WEIGHT);
  }
}
