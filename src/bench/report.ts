import type { RequestResult } from './load-generator.js';
import { markdownRow } from './markdown.js';
import { percentile } from './stats.js';

/** Latency percentiles (ms). */
export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
}

/** Aggregate figures of one workload against one endpoint. */
export interface BenchSummary {
  label: string;
  url: string;
  concurrency: number;
  requests: number;
  ok: number;
  errors: number;
  /** Errors by HTTP status ("0" = no response). */
  errorsByStatus: Record<string, number>;
  wallSeconds: number;
  requestsPerSecond: number;
  outputTokensPerSecond: number;
  ttftMs: Percentiles;
  tpotMs: Percentiles;
  e2eMs: Percentiles;
  /** From dsd's usage extension, when present. */
  acceptanceRate: number | undefined;
  meanAcceptanceLength: number | undefined;
}

function pcts(values: number[]): Percentiles {
  return { p50: percentile(values, 50), p95: percentile(values, 95), p99: percentile(values, 99) };
}

/** Summarizes one run (`wallMs`: the time the endpoint was busy with it). */
export function summarize(
  label: string,
  url: string,
  concurrency: number,
  results: readonly RequestResult[],
  wallMs: number,
): BenchSummary {
  const ok = results.filter((r) => r.ok);
  const errorsByStatus: Record<string, number> = {};
  for (const r of results) if (!r.ok) errorsByStatus[String(r.status)] = (errorsByStatus[String(r.status)] ?? 0) + 1;
  const tokens = ok.reduce((s, r) => s + r.outputTokens, 0);
  const dsd = ok.map((r) => r.dsd).filter((d): d is NonNullable<RequestResult['dsd']> => d !== undefined);
  const drafted = dsd.reduce((s, d) => s + d.draft_tokens, 0);
  const accepted = dsd.reduce((s, d) => s + d.accepted_tokens, 0);
  const rounds = dsd.reduce((s, d) => s + d.rounds, 0);
  const seconds = wallMs / 1000;
  return {
    label,
    url,
    concurrency,
    requests: results.length,
    ok: ok.length,
    errors: results.length - ok.length,
    errorsByStatus,
    wallSeconds: seconds,
    requestsPerSecond: ok.length / seconds,
    outputTokensPerSecond: tokens / seconds,
    ttftMs: pcts(ok.map((r) => r.ttftMs).filter((v): v is number => v !== undefined)),
    tpotMs: pcts(ok.map((r) => r.tpotMs).filter((v): v is number => v !== undefined)),
    e2eMs: pcts(ok.map((r) => r.e2eMs)),
    acceptanceRate: drafted > 0 ? accepted / drafted : undefined,
    meanAcceptanceLength: rounds > 0 ? 1 + accepted / rounds : undefined,
  };
}

const f1 = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(1));

/** A Markdown table of summaries, with ratios to the first label at the same concurrency. */
export function markdownReport(summaries: readonly BenchSummary[]): string {
  const lines = [
    markdownRow([
      'endpoint',
      'concurrency',
      'ok / requests',
      'tokens/s',
      'vs first',
      'requests/s',
      'TTFT p50 / p95 / p99 ms',
      'TPOT p50 / p95 ms',
      'e2e p50 / p95 / p99 ms',
      'acceptance',
      'mean acc. length',
      'errors',
    ]),
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of summaries) {
    const base = summaries.find((b) => b.concurrency === s.concurrency);
    const ratio =
      base && base.outputTokensPerSecond > 0
        ? `${(s.outputTokensPerSecond / base.outputTokensPerSecond).toFixed(2)}×`
        : '—';
    const errors =
      Object.entries(s.errorsByStatus)
        .map(([status, n]) => `${n}× ${status === '0' ? 'no response' : status}`)
        .join(', ') || '0';
    lines.push(
      markdownRow([
        s.label,
        s.concurrency,
        `${s.ok} / ${s.requests}`,
        f1(s.outputTokensPerSecond),
        ratio,
        s.requestsPerSecond.toFixed(2),
        `${f1(s.ttftMs.p50)} / ${f1(s.ttftMs.p95)} / ${f1(s.ttftMs.p99)}`,
        `${s.tpotMs.p50.toFixed(2)} / ${s.tpotMs.p95.toFixed(2)}`,
        `${f1(s.e2eMs.p50)} / ${f1(s.e2eMs.p95)} / ${f1(s.e2eMs.p99)}`,
        `${s.acceptanceRate === undefined ? '—' : `${(100 * s.acceptanceRate).toFixed(1)} %`}`,
        s.meanAcceptanceLength?.toFixed(2) ?? '—',
        errors,
      ]),
    );
  }
  return lines.join('\n');
}
