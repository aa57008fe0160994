/** Percentile (nearest-rank on a sorted copy); p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Median. */
export const median = (values: readonly number[]) => percentile(values, 50);

/** Formats milliseconds with 2 decimals. */
export const ms = (v: number) => `${v.toFixed(2)} ms`;
