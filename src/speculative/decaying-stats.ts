/**
 * Estimators that forget: old observations fade exponentially, so what they estimate follows a
 * changing load or network (the pair estimates and the verifier's batch-cost fit use them).
 */

/** y ≈ intercept + slope·x by least squares with exponential forgetting and a prior slope. */
export class DecayingLinearFit {
  private w = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  /** The fitted line, kept until the sums change: the planner predicts every k of a round from it. */
  private line: { mx: number; my: number; slope: number } | undefined;

  constructor(
    private readonly decay: number,
    /** Used while the observed x values do not spread enough to fit a slope. */
    private readonly priorSlope: (meanY: number, meanX: number) => number,
  ) {}

  /** Adds one observation, counted `weight` times. */
  add(x: number, y: number, weight = 1): void {
    this.line = undefined;
    this.w = this.w * this.decay + weight;
    this.sx = this.sx * this.decay + weight * x;
    this.sy = this.sy * this.decay + weight * y;
    this.sxx = this.sxx * this.decay + weight * x * x;
    this.sxy = this.sxy * this.decay + weight * x * y;
  }

  /** Effective number of observations remembered. */
  get weight(): number {
    return this.w;
  }

  /** Mean x of what is remembered, or undefined with no data. */
  get meanX(): number | undefined {
    return this.w < 1e-9 ? undefined : this.sx / this.w;
  }

  /** Keeps `fraction` of the weight of everything seen so far (same fit, less say against new data). */
  forget(fraction: number): void {
    this.line = undefined;
    this.w *= fraction;
    this.sx *= fraction;
    this.sy *= fraction;
    this.sxx *= fraction;
    this.sxy *= fraction;
  }

  /** The sums, for handing the fit to another process. */
  snapshot(): number[] {
    return [this.w, this.sx, this.sy, this.sxx, this.sxy];
  }

  /** Takes over sums from snapshot(). */
  restore(s: readonly number[]): void {
    this.line = undefined;
    [this.w = 0, this.sx = 0, this.sy = 0, this.sxx = 0, this.sxy = 0] = s;
  }

  /** Prediction at x, or undefined with no data. */
  predict(x: number): number | undefined {
    if (this.w < 1e-9) return undefined;
    this.line ??= this.fit();
    const { mx, my, slope } = this.line;
    return Math.max(0, my + slope * (x - mx));
  }

  private fit(): { mx: number; my: number; slope: number } {
    const mx = this.sx / this.w;
    const my = this.sy / this.w;
    const varX = this.sxx / this.w - mx * mx;
    const prior = this.priorSlope(my, mx);
    // Ridge toward the prior slope, kept light: the prior (half a request per position) is far too
    // steep when a round trip dominates the request time, and exploring k±3 gives the data spread
    // enough to overrule it (bench:adaptive, README). With no spread at all the prior still decides.
    const slope = (this.sxy / this.w - mx * my + 0.05 * prior) / (varX + 0.05);
    return { mx, my, slope };
  }
}

/** An exponentially weighted mean. */
export class DecayingMean {
  private w = 0;
  private s = 0;
  constructor(private readonly decay: number) {}
  add(v: number, weight = 1): void {
    this.w = this.w * this.decay + weight;
    this.s = this.s * this.decay + v * weight;
  }
  get weight(): number {
    return this.w;
  }
  get value(): number | undefined {
    return this.w < 1e-9 ? undefined : this.s / this.w;
  }
  snapshot(): number[] {
    return [this.w, this.s];
  }
  restore(s: readonly number[]): void {
    [this.w = 0, this.s = 0] = s;
  }
}

/**
 * ms ≈ fixed·passes + perPosition·positions by least squares with exponential forgetting: a batched
 * step's time when the engine may split a batch into several passes over the weights, each paying
 * the fixed part again. A light ridge pulls perPosition toward 0 while the positions do not spread
 * (with one pass a step it is the intercept fit DecayingLinearFit makes with a zero prior).
 */
export class DecayingStepFit {
  private w = 0;
  private sPP = 0;
  private sPN = 0;
  private sNN = 0;
  private sPY = 0;
  private sNY = 0;

  constructor(private readonly decay: number) {}

  /** Adds one step: its passes, its positions and what it took. */
  add(passes: number, positions: number, ms: number): void {
    const d = this.decay;
    this.w = this.w * d + 1;
    this.sPP = this.sPP * d + passes * passes;
    this.sPN = this.sPN * d + passes * positions;
    this.sNN = this.sNN * d + positions * positions;
    this.sPY = this.sPY * d + passes * ms;
    this.sNY = this.sNY * d + positions * ms;
  }

  /** The fitted costs (both ≥ 0), or undefined with no data. */
  fit(): { fixedMs: number; positionMs: number } | undefined {
    if (this.w < 1e-9 || this.sPP < 1e-9) return undefined;
    const nn = this.sNN + 0.05 * this.w;
    const det = this.sPP * nn - this.sPN * this.sPN;
    const positionMs = det > 1e-9 ? Math.max(0, (this.sPP * this.sNY - this.sPN * this.sPY) / det) : 0;
    const fixedMs = Math.max(0, (this.sPY - positionMs * this.sPN) / this.sPP);
    return { fixedMs, positionMs };
  }
}
