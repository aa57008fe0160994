/** Percentile by linear interpolation between closest ranks (p in [0, 100]); NaN for no data. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (rank - lo);
}

/** Median. */
export const median = (values: readonly number[]): number => percentile(values, 50);

/** Arithmetic mean; NaN for no data. */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Formats milliseconds with 2 decimals. */
export const ms = (v: number): string => `${v.toFixed(2)} ms`;
