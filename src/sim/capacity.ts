import type { StrategyResult } from './run.js';

/** How far one strategy goes under an inter-token latency bound. */
export interface CapacityRow {
  strategy: string;
  /** The largest swept value (edges, users) at which it and every smaller one meet the bound. */
  largest: number | undefined;
  /** Output tokens per second per target there. */
  tokensPerSPerTarget: number | undefined;
  /** Its time per output token (p95) there. */
  tpotP95Ms: number | undefined;
}

/**
 * Capacity planning over a sweep of load (edges or users per target): for each strategy, the
 * largest load whose inter-token latency (TPOT p95) stays within `tpotBoundMs`, counting only an
 * unbroken run from the smallest load up (a noisy point past the knee does not count), and what
 * the targets deliver there.
 */
export function capacityUnderBound(
  runs: readonly { value: number; results: readonly StrategyResult[] }[],
  tpotBoundMs: number,
  targets: number,
): CapacityRow[] {
  const sorted = [...runs].sort((a, b) => a.value - b.value);
  const names = sorted[0]?.results.map((r) => r.strategy) ?? [];
  return names.map((strategy) => {
    let row: CapacityRow = { strategy, largest: undefined, tokensPerSPerTarget: undefined, tpotP95Ms: undefined };
    for (const run of sorted) {
      const r = run.results.find((x) => x.strategy === strategy);
      if (r === undefined || !(r.tpotMs.p95 <= tpotBoundMs)) break;
      row = {
        strategy,
        largest: run.value,
        tokensPerSPerTarget: r.throughputTokensPerS / Math.max(1, targets),
        tpotP95Ms: r.tpotMs.p95,
      };
    }
    return row;
  });
}
