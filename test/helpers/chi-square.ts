/** Result of a two-sample chi-square homogeneity test. */
export interface ChiSquareResult {
  statistic: number;
  degreesOfFreedom: number;
  pValue: number;
}

/**
 * Two-sample chi-square test that two samples of categories come from one distribution.
 * Categories with an expected count below 5 in either sample are pooled into one bin.
 * The p-value uses the Wilson–Hilferty normal approximation of the chi-square tail.
 */
export function chiSquareTwoSample(a: readonly string[], b: readonly string[]): ChiSquareResult {
  const count = (xs: readonly string[]) =>
    xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
  const ca = count(a);
  const cb = count(b);
  const na = a.length;
  const nb = b.length;
  const bins: [number, number][] = [];
  let pooled: [number, number] = [0, 0];
  for (const key of new Set([...ca.keys(), ...cb.keys()])) {
    const x = ca.get(key) ?? 0;
    const y = cb.get(key) ?? 0;
    const total = x + y;
    if ((total * na) / (na + nb) < 5 || (total * nb) / (na + nb) < 5) pooled = [pooled[0] + x, pooled[1] + y];
    else bins.push([x, y]);
  }
  if (pooled[0] + pooled[1] > 0) bins.push(pooled);
  let statistic = 0;
  for (const [x, y] of bins) {
    const total = x + y;
    const ea = (total * na) / (na + nb);
    const eb = (total * nb) / (na + nb);
    statistic += (x - ea) ** 2 / ea + (y - eb) ** 2 / eb;
  }
  const k = Math.max(1, bins.length - 1);
  const z = ((statistic / k) ** (1 / 3) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k));
  return { statistic, degreesOfFreedom: k, pValue: 1 - normalCdf(z) };
}

function normalCdf(z: number): number {
  // Abramowitz–Stegun 7.1.26 via erf.
  const t = 1 / (1 + 0.3275911 * Math.abs(z / Math.SQRT2));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-((z / Math.SQRT2) ** 2));
  return 0.5 * (1 + Math.sign(z) * y);
}
