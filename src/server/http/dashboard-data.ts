import { AdaptiveWindow } from '../../speculative/adaptive-window.js';
import type { PairEstimates } from '../../speculative/estimates.js';
import { seededRng } from '../../speculative/sampling.js';
import type { DsdContext } from '../context.js';
import { aheadDepthFor } from '../generation/speculative-session.js';
import type { PairState } from '../upstreams/draft-pool.js';

/** Positions the dashboard shows acceptance for. */
const SHOWN_POSITIONS = 8;

/** One draft–target pair as /dashboard shows it. */
export interface PairView {
  draft: string;
  breaker: string;
  inFlight: number;
  vocabulary: string;
  /** Conditional acceptance at positions 1..8 (undefined before any round). */
  acceptanceByPosition: (number | null)[];
  proposals: number;
  /** The window the planner predicts fastest for the pair, and that speed-up (null: not known yet). */
  bestK: number | null;
  predictedSpeedup: number | null;
  targetMsPerToken: number | null;
  /** The window, draft-ahead depth and planner reason of the pair's last round. */
  lastRound: { k: number; depth: number; reason: string; secondsAgo: number } | null;
}

/** A connected target: its traffic, and the link round trip when it is a `dsd verifier`. */
export interface TargetView {
  url: string;
  kind: string;
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  linkRttMs: number | null;
}

/** What /dashboard/data returns. */
export interface DashboardData {
  at: string;
  /** The process that answered (with `dsd serve --workers N`, one of N). */
  pid: number;
  target: { urls: string[] };
  targets: TargetView[];
  requests: { speculative: number; passthrough: number; draftFallbacks: number };
  /** Draft tokens proposed and accepted, speculative rounds (each adds one target token), target-only tokens. */
  tokens: { drafted: number; accepted: number; rounds: number; targetOnly: number };
  /** Mean time per output token of speculative requests (dsd_time_per_output_token_seconds). */
  speculativeMsPerToken: number | null;
  /** The target's own time per token, measured by target-only stretches through the engine. */
  targetAloneMsPerToken: number | null;
  /** Measured: the target's own ms/token ÷ speculative ms/token. */
  measuredSpeedup: number | null;
  fallbacks: Record<string, number>;
  pairs: PairView[];
}

const round = (v: number | undefined, digits = 3) => (v === undefined ? null : Number(v.toFixed(digits)));

/**
 * The planner's own prediction for a pair, as the adaptive window would make it now: the fastest
 * window in the configured bounds, and its speed-up over the target's own time per token.
 */
function bestWindow(ctx: DsdContext, e: PairEstimates): { k: number; speedup: number } | undefined {
  const s = ctx.config.speculation;
  const kind = ctx.upstreams.targets.connected()[0]?.server.kind ?? 'llamacpp';
  const window = new AdaptiveWindow(e, {
    min: Math.max(1, s.windowMin),
    max: s.windowMax,
    initialK: 4,
    margin: 0,
    explore: 0,
    draftAhead: s.draftAhead,
    aheadDepth: aheadDepthFor(s.aheadDepth, kind),
    rng: seededRng(1),
  });
  const best = window.best();
  const target = e.targetOnlyMsPerToken.value;
  return best === undefined || target === undefined ? undefined : { k: best.k, speedup: target / best.msPerToken };
}

function pairView(ctx: DsdContext, p: PairState): PairView {
  const e = p.estimates;
  const best = bestWindow(ctx, e);
  return {
    draft: p.url,
    breaker: p.state,
    inFlight: p.inFlight,
    vocabulary: p.vocabulary,
    acceptanceByPosition: Array.from({ length: SHOWN_POSITIONS }, (_, i) =>
      e.acceptance.weight > 0 ? round(e.acceptance.rate(i)) : null,
    ),
    proposals: Math.round(e.acceptance.weight),
    bestK: best?.k ?? null,
    predictedSpeedup: round(best?.speedup, 2),
    targetMsPerToken: round(e.targetOnlyMsPerToken.value, 2),
    lastRound:
      p.lastRound === undefined
        ? null
        : {
            k: p.lastRound.k,
            depth: p.lastRound.depth,
            reason: p.lastRound.reason,
            secondsAgo: Math.round((Date.now() - p.lastRound.at) / 1000),
          },
  };
}

type MetricValues = { value: number; labels: Record<string, string | number>; metricName?: string }[];

async function values(ctx: DsdContext, name: string): Promise<MetricValues> {
  const metric = ctx.metrics.registry.getSingleMetric(name);
  return metric === undefined ? [] : ((await metric.get()).values as MetricValues);
}

const total = (v: MetricValues) => v.reduce((s, x) => s + x.value, 0);

async function msPerToken(ctx: DsdContext, mode: string): Promise<number | null> {
  const v = (await values(ctx, 'dsd_time_per_output_token_seconds')).filter((x) => x.labels.mode === mode);
  const sum = total(v.filter((x) => x.metricName?.endsWith('_sum')));
  const count = total(v.filter((x) => x.metricName?.endsWith('_count')));
  return count === 0 ? null : round((sum / count) * 1000, 2);
}

/** A snapshot of what speculation is doing, for the live dashboard. */
export async function dashboardData(ctx: DsdContext): Promise<DashboardData> {
  const spec = await msPerToken(ctx, 'speculative');
  const pairs = ctx.upstreams.drafts.pairs().map((p) => pairView(ctx, p));
  // The best-measured pair's figure: every pair times the same target.
  const alone = [...pairs].sort((a, b) => b.proposals - a.proposals).find((p) => p.targetMsPerToken !== null);
  const targetMs = alone?.targetMsPerToken ?? null;
  const fallbacks: Record<string, number> = {};
  for (const v of await values(ctx, 'dsd_fallbacks_total')) fallbacks[String(v.labels.reason)] = v.value;
  return {
    at: new Date().toISOString(),
    pid: process.pid,
    target: { urls: ctx.config.target.urls },
    targets: ctx.upstreams.targets.connected().map(({ server }) => ({
      url: server.baseUrl,
      kind: server.kind,
      ...server.counters,
      linkRttMs: 'linkRttMs' in server ? (round(server.linkRttMs as number | undefined, 2) ?? null) : null,
    })),
    requests: { ...ctx.counters },
    tokens: {
      drafted: total(await values(ctx, 'dsd:spec_decode_num_draft_tokens_total')),
      accepted: total(await values(ctx, 'dsd:spec_decode_num_accepted_tokens_total')),
      rounds: total(await values(ctx, 'dsd:spec_decode_num_drafts_total')),
      targetOnly: total(await values(ctx, 'dsd_target_only_tokens_total')),
    },
    speculativeMsPerToken: spec,
    targetAloneMsPerToken: targetMs,
    measuredSpeedup: spec !== null && targetMs !== null && spec > 0 ? round(targetMs / spec, 2) : null,
    fallbacks,
    pairs,
  };
}
