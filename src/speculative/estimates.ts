import { chainHitMs } from './chain-cost.js';
import { DecayingLinearFit, DecayingMean } from './decaying-stats.js';

/**
 * Online estimates for one draft–target pair, kept across requests: acceptance by position, draft
 * time as a function of k, verification time as a function of the positions scored, and the
 * target's own time per token when it streams alone. Old observations fade (exponential
 * forgetting), so the estimates follow load and network changes.
 */

/** What one speculative round showed. */
export interface RoundObservation {
  /** Draft tokens proposed (k). */
  drafted: number;
  accepted: number;
  /** Time the round waited for the draft (0 when draft-ahead had it ready). */
  draftMs: number;
  /** Full draft request time, even when hidden by draft-ahead. */
  draftWorkMs: number;
  /** Time for the target to score k+1 positions, network included. */
  verifyMs: number;
  /** Set for a round draft-ahead sent before the previous verdict: how deep the chain was allowed
   *  to go, and how long the engine waited for it after that verdict. */
  early?: { depth: number; waitMs: number };
}

/** Per-position acceptance counters (position i = i-th draft token, given all before it accepted). */
export class PositionAcceptance {
  private readonly tried: number[] = [];
  private readonly accepted: number[] = [];
  /**
   * Derived from the counters, built on first use after a change: the planner asks for every k
   * and depth each round, and recomputing the pooled rate and the products each time was most
   * of DSD-Si's time with the adaptive window. Same arithmetic in the same order, so the same bits.
   */
  private derived: { pooled: number; chain: number[]; expected: number[] } | undefined;
  constructor(private readonly decay: number) {}

  /** A proposal of `drafted` tokens of which the first `accepted` were accepted. */
  add(drafted: number, accepted: number): void {
    this.derived = undefined;
    for (let i = 0; i < this.tried.length; i++) {
      this.tried[i] = (this.tried[i] as number) * this.decay;
      this.accepted[i] = (this.accepted[i] as number) * this.decay;
    }
    const seen = Math.min(drafted, accepted + 1);
    for (let i = 0; i < seen; i++) {
      this.tried[i] = (this.tried[i] ?? 0) + 1;
      this.accepted[i] = (this.accepted[i] ?? 0) + (i < accepted ? 1 : 0);
    }
  }

  /** Conditional acceptance at position i (0-based), shrunk toward the pooled rate when data is thin. */
  rate(i: number): number | undefined {
    const pooled = this.pooled();
    if (pooled === undefined) return undefined;
    const t = this.tried[i] ?? 0;
    const a = this.accepted[i] ?? 0;
    const priorWeight = 4;
    return (a + priorWeight * pooled) / (t + priorWeight);
  }

  private pooled(): number | undefined {
    if (this.derived !== undefined) return this.derived.pooled;
    let tried = 0;
    let acc = 0;
    for (let j = 0; j < this.tried.length; j++) {
      tried += this.tried[j] as number;
      acc += this.accepted[j] as number;
    }
    if (tried < 1e-9) return undefined;
    this.derived = { pooled: acc / tried, chain: [1], expected: [1] };
    return this.derived.pooled;
  }

  /** Derived products up to n positions (undefined while nothing has been seen). */
  private upTo(n: number): { chain: number[]; expected: number[] } | undefined {
    if (this.pooled() === undefined) return undefined;
    const d = this.derived as { chain: number[]; expected: number[] };
    for (let i = d.chain.length - 1; i < n; i++) {
      const chain = (d.chain[i] as number) * (this.rate(i) as number);
      d.chain.push(chain);
      d.expected.push((d.expected[i] as number) + chain);
    }
    return d;
  }

  /** Probability that the first n drafts are all accepted: Π_{i<n} α_i (0 while nothing is known). */
  allAccepted(n: number): number {
    return this.upTo(n)?.chain[n] ?? 0;
  }

  /** Effective number of proposals seen at the first position. */
  get weight(): number {
    return this.tried[0] ?? 0;
  }

  /** Expected tokens a round of window k commits: 1 + Σ_{i=1..k} Π_{j≤i} α_j (the bonus included). */
  expectedTokens(k: number): number {
    return k <= 0 ? 1 : (this.upTo(k)?.expected[k] ?? 1);
  }

  snapshot(): { tried: number[]; accepted: number[] } {
    return { tried: [...this.tried], accepted: [...this.accepted] };
  }

  restore(s: { tried: readonly number[]; accepted: readonly number[] }): void {
    this.derived = undefined;
    this.tried.splice(0, this.tried.length, ...s.tried);
    this.accepted.splice(0, this.accepted.length, ...s.accepted);
  }
}

/** PairEstimates as plain JSON: what one worker process hands to another (see server/cluster.ts). */
export interface PairSnapshot {
  acceptance: { tried: number[]; accepted: number[] };
  draftMs: number[];
  verifyMs: number[];
  targetOnlyMsPerToken: number[];
  aheadSlowdown: number[];
  /** verifyResiduals by k (an empty list where a k has none). */
  verifyResiduals: number[][];
}

/** Per observation of its k: how much a verification residual keeps of what it had. */
const RESIDUAL_DECAY = 0.98;
/** Observations of a k before its residual has half its say. */
const RESIDUAL_SHRINK = 3;

/** How many ordinary rounds a probe round's time counts for. */
const PROBE_WEIGHT = 4;
/** A probe this much cheaper than predicted means the round cost has changed, not noise. */
const PROBE_SURPRISE = 0.75;

/** Everything dsd knows about one draft–target pair. */
export class PairEstimates {
  readonly acceptance: PositionAcceptance;
  /** Draft request time by k. */
  readonly draftMs: DecayingLinearFit;
  /** Verification request time by number of positions (k+1). */
  readonly verifyMs: DecayingLinearFit;
  /** Target-only streaming: time per token after the first. */
  readonly targetOnlyMsPerToken: DecayingMean;
  /**
   * Measured ÷ modelled wait for early-verified rounds. The model assumes the target verifies
   * d+1 rounds side by side as fast as one (a batching GPU server); a CPU target that runs them on
   * the same cores shows a ratio well above 1, which prices early verification out.
   */
  readonly aheadSlowdown: DecayingMean;
  /**
   * By k: what rounds of window k measured beyond the verification fit's line. Under load a
   * batching target runs its steps back to back, so a round's verification takes a whole number of
   * them: one whose request misses the next step, because its draft took longer, waits a whole step
   * more. Time is then a step function of k that no line through all k shows: rounds near the
   * best k sit either side of that cliff. Measured per k, it is priced where it is.
   */
  private readonly verifyResiduals: DecayingMean[] = [];

  constructor(decay = 0.97) {
    this.acceptance = new PositionAcceptance(decay);
    // Without spread in k, assume the draft's time is per token (a local model's cost).
    this.draftMs = new DecayingLinearFit(decay, (my, mx) => my / Math.max(1, mx));
    // Without spread in positions, assume batching is half as costly per position as a whole
    // request is: pessimistic for GPUs, which is the safe side.
    this.verifyMs = new DecayingLinearFit(decay, (my, mx) => (0.5 * my) / Math.max(1, mx));
    this.targetOnlyMsPerToken = new DecayingMean(decay);
    this.aheadSlowdown = new DecayingMean(decay);
  }

  /** What these estimates know, as plain JSON. */
  snapshot(): PairSnapshot {
    return {
      acceptance: this.acceptance.snapshot(),
      draftMs: this.draftMs.snapshot(),
      verifyMs: this.verifyMs.snapshot(),
      targetOnlyMsPerToken: this.targetOnlyMsPerToken.snapshot(),
      aheadSlowdown: this.aheadSlowdown.snapshot(),
      verifyResiduals: Array.from(this.verifyResiduals, (r) => r?.snapshot() ?? []),
    };
  }

  /**
   * Takes over another process's estimates when they know clearly more (four times the proposals
   * seen): a fresh worker starts warm, and one that has its own live data keeps it.
   */
  adopt(s: PairSnapshot): boolean {
    const theirs = s.acceptance.tried[0] ?? 0;
    if (theirs <= 4 * Math.max(this.acceptance.weight, 0.25)) return false;
    this.acceptance.restore(s.acceptance);
    this.draftMs.restore(s.draftMs);
    this.verifyMs.restore(s.verifyMs);
    this.targetOnlyMsPerToken.restore(s.targetOnlyMsPerToken);
    this.aheadSlowdown.restore(s.aheadSlowdown);
    this.verifyResiduals.length = 0;
    (s.verifyResiduals ?? []).forEach((r, k) => {
      if (r.length === 0) return;
      const mean = new DecayingMean(RESIDUAL_DECAY);
      mean.restore(r);
      this.verifyResiduals[k] = mean;
    });
    return true;
  }

  /**
   * Predicted verification time of a round of window k: the fit's line, plus what rounds of this k
   * have measured beyond it, shrunk toward 0 while they are few (see verifyResiduals).
   */
  verifyMsAt(k: number): number | undefined {
    const line = this.verifyMs.predict(k + 1);
    const residual = this.verifyResiduals[k];
    if (line === undefined || residual?.value === undefined) return line;
    const say = residual.weight / (residual.weight + RESIDUAL_SHRINK);
    return Math.max(0, line + say * residual.value);
  }

  /** Probability that a round of window k hits: all k accepted and the bonus token guessed. */
  hitProbability(k: number): number {
    return this.acceptance.allAccepted(k + 1);
  }

  /**
   * Modelled wait, after the previous verdict, for a round sent `depth` rounds ahead whose chain
   * held: chainHitMs per hit (one draft time for most rounds of a chain, what is left of a
   * verification for every (d+1)-th).
   */
  earlyRoundMs(k: number, depth: number): number | undefined {
    const verify = this.verifyMsAt(k);
    const draft = this.draftMs.predict(k + 1);
    if (verify === undefined || draft === undefined) return undefined;
    const hit = this.hitProbability(k);
    if (hit < 1e-9) return Math.max(draft, verify / (depth + 1));
    return chainHitMs({ hit, nextDraftMs: draft, verifyMs: verify, depth }) / hit;
  }

  /** Target-only tokens streamed through the engine since the pair's last speculative round. */
  targetOnlySinceRound = 0;

  /** Set by a probe that found rounds much cheaper than predicted: probe again without waiting. */
  recheckDue = false;

  /**
   * Records a speculative round. A probe's round time counts `PROBE_WEIGHT` times: it is the only
   * fresh news of the round cost after a target-only spell, and the rounds before it may come from
   * another load (a start-up burst, a busier target) that would otherwise keep the pair off
   * speculation for a long time.
   */
  observeRound(r: RoundObservation, probe = false): void {
    this.targetOnlySinceRound = 0;
    this.recheckDue = false;
    if (probe) {
      // Much cheaper than predicted: what the fit remembers is from another load. Keep a quarter
      // of it and probe again at the next request, until probes stop surprising or rounds resume.
      // Judged against the level at the fit's mean too (verification never gets cheaper with more
      // positions), so a slope still at its prior is not mistaken for a change of load.
      const meanX = this.verifyMs.meanX;
      const predicted = Math.min(
        this.verifyMs.predict(r.drafted + 1) ?? Infinity,
        meanX === undefined ? Infinity : (this.verifyMs.predict(meanX) ?? Infinity),
      );
      if (Number.isFinite(predicted) && r.verifyMs < PROBE_SURPRISE * predicted) {
        this.verifyMs.forget(0.25);
        this.recheckDue = true;
      }
    }
    if (r.drafted > 0) {
      this.acceptance.add(r.drafted, r.accepted);
      this.draftMs.add(r.drafted, r.draftWorkMs);
    }
    // A probe follows a target-only spell, at another load: news of the level, not of the shape.
    const line = this.verifyMs.predict(r.drafted + 1);
    if (line !== undefined && !probe) {
      const residual = this.verifyResiduals[r.drafted] ?? new DecayingMean(RESIDUAL_DECAY);
      residual.add(r.verifyMs - line);
      this.verifyResiduals[r.drafted] = residual;
    }
    this.verifyMs.add(r.drafted + 1, r.verifyMs, probe ? PROBE_WEIGHT : 1);
    if (r.early !== undefined && r.drafted > 0) {
      const modelled = this.earlyRoundMs(r.drafted, r.early.depth);
      if (modelled !== undefined && modelled > 0) this.aheadSlowdown.add(Math.min(8, r.early.waitMs / modelled));
    }
  }

  /** Records a shadow proposal checked against what the target streamed (acceptance only). */
  observeShadow(drafted: number, accepted: number, draftWorkMs: number): void {
    this.acceptance.add(drafted, accepted);
    this.draftMs.add(drafted, draftWorkMs);
  }

  /** Records the gap between two tokens of a target-only stream. */
  observeTargetOnlyGap(ms: number): void {
    this.targetOnlySinceRound += 1;
    this.targetOnlyMsPerToken.add(ms);
  }

  private directRequests = 0;

  /**
   * Called for a request that the planner would start target-only. Such requests go straight to
   * the target (one round trip, as a direct client), except every `refreshEvery`-th, which runs
   * through the engine so shadow drafts and probe rounds keep these estimates current.
   * Returns true when this request should refresh.
   */
  shouldRefresh(refreshEvery: number): boolean {
    this.directRequests += 1;
    if (this.directRequests < refreshEvery) return false;
    this.directRequests = 0;
    return true;
  }
}
