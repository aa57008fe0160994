import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_PROMPTS_PATH, firstModel, loadPrompts, type RequestResult, runLoad } from './load-generator.js';
import { ProgressBar } from './progress.js';
import { type BenchSummary, markdownReport, summarize } from './report.js';
import { cdfPoints, renderLineChart } from './svg-chart.js';

/** Usage of `dsd bench`. */
export const BENCH_HELP = `dsd bench — load generator and report for any OpenAI-compatible endpoint

Usage:
  dsd bench --url BASE_URL [--url NAME=BASE_URL …] [options]

Options:
  --url URL | NAME=URL    endpoint (repeat for several; the first is the baseline of the ratios)
  --api-key KEY           bearer key sent to every endpoint
  --model MODEL           model name (default: the first one each endpoint lists)
  --concurrency N[,N…]    requests in flight (default 1; a list runs each level)
  --requests M            requests per endpoint and level (default 50)
  --prompts FILE.jsonl    {"prompt": "..."} or {"messages": [...]} per line (default: the shipped set)
  --max-tokens T          default 64
  --temperature X         default 0
  --stream                stream responses (TTFT and time per output token need it)
  --compare               interleave the endpoints wave by wave (A B A B …) so machine noise cancels
  --timeout-ms MS         per request (default 120000)
  --out DIR               where results.json, report.md and the SVG charts go (default bench-results/<time>)
`;

interface Endpoint {
  label: string;
  url: string;
  model: string;
}

/** Runs `dsd bench` with command-line arguments; returns the summaries (also written to --out). */
export async function benchCommand(
  args: string[],
  log: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<BenchSummary[]> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      url: { type: 'string', multiple: true },
      'api-key': { type: 'string' },
      model: { type: 'string' },
      concurrency: { type: 'string', default: '1' },
      requests: { type: 'string', default: '50' },
      prompts: { type: 'string' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0' },
      stream: { type: 'boolean', default: false },
      compare: { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '120000' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    log(BENCH_HELP);
    return [];
  }
  const problems: string[] = [];
  const int = (name: string, raw: string, min: number) => {
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min)
      problems.push(`--${name} ${JSON.stringify(raw)}: expected an integer ≥ ${min}`);
    return v;
  };
  const concurrencies = (values.concurrency ?? '1').split(',').map((c) => int('concurrency', c, 1));
  const requests = int('requests', values.requests ?? '50', 1);
  const maxTokens = int('max-tokens', values['max-tokens'] ?? '64', 1);
  const timeoutMs = int('timeout-ms', values['timeout-ms'] ?? '120000', 1);
  const temperature = Number(values.temperature);
  if (!(temperature >= 0 && temperature <= 2))
    problems.push(`--temperature ${JSON.stringify(values.temperature)}: expected 0 to 2`);
  if (!values.url || values.url.length === 0) problems.push('--url is required');
  if (problems.length > 0) throw new Error(`dsd bench: ${problems.join('; ')}\n\n${BENCH_HELP}`);
  const prompts = loadPrompts(values.prompts ?? DEFAULT_PROMPTS_PATH);
  const apiKey = values['api-key'];
  const endpoints: Endpoint[] = [];
  for (const spec of values.url as string[]) {
    const eq = spec.indexOf('=');
    const [label, url] =
      eq > 0 && !spec.slice(0, eq).includes('/') ? [spec.slice(0, eq), spec.slice(eq + 1)] : [new URL(spec).host, spec];
    const model = values.model ?? (await firstModel(url, apiKey, timeoutMs));
    endpoints.push({ label, url, model });
  }
  const common = { apiKey, prompts, maxTokens, temperature, stream: values.stream ?? false, timeoutMs };
  const summaries: BenchSummary[] = [];
  const raw: Record<string, RequestResult[]> = {};
  for (const concurrency of concurrencies) {
    const bar = new ProgressBar(requests * endpoints.length, `concurrency ${concurrency}`);
    const busy = new Map<string, { ms: number; results: RequestResult[] }>(
      endpoints.map((e) => [e.label, { ms: 0, results: [] }]),
    );
    // --compare: waves of `concurrency` requests, alternating endpoints; otherwise one endpoint after another.
    const wave = values.compare ? concurrency : requests;
    for (let offset = 0; offset < requests; offset += wave) {
      for (const e of endpoints) {
        const started = performance.now();
        const results = await runLoad({
          ...common,
          url: e.url,
          model: e.model,
          concurrency,
          requests: Math.min(wave, requests - offset),
          promptOffset: offset,
          onDone: () => bar.tick(),
        });
        const acc = busy.get(e.label) as { ms: number; results: RequestResult[] };
        acc.ms += performance.now() - started;
        acc.results.push(...results);
      }
    }
    for (const e of endpoints) {
      const acc = busy.get(e.label) as { ms: number; results: RequestResult[] };
      summaries.push(summarize(e.label, e.url, concurrency, acc.results, acc.ms));
      raw[`${e.label}@${concurrency}`] = acc.results;
    }
  }
  const out = resolve(values.out ?? join('bench-results', new Date().toISOString().replace(/[:.]/g, '-')));
  writeOutputs(out, summaries, raw, {
    compare: values.compare ?? false,
    stream: common.stream,
    maxTokens,
    temperature,
    requests,
  });
  log(markdownReport(summaries));
  log(
    `\nresults: ${join(out, 'results.json')}, ${join(out, 'report.md')}, ${join(out, 'latency-cdf.svg')}, ` +
      `${join(out, 'throughput.svg')}`,
  );
  return summaries;
}

function writeOutputs(
  out: string,
  summaries: BenchSummary[],
  raw: Record<string, RequestResult[]>,
  settings: Record<string, unknown>,
): void {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), JSON.stringify({ settings, summaries, requests: raw }, null, 2));
  writeFileSync(
    join(out, 'report.md'),
    `# dsd bench\n\nSettings: ${JSON.stringify(settings)}\n\n${markdownReport(summaries)}\n`,
  );
  const latency = Object.entries(raw).map(([name, results]) => ({
    name,
    points: cdfPoints(results.filter((r) => r.ok).map((r) => r.e2eMs)),
  }));
  writeFileSync(
    join(out, 'latency-cdf.svg'),
    renderLineChart({
      title: 'End-to-end latency distribution',
      xLabel: 'latency (ms)',
      yLabel: 'fraction of requests',
      series: latency,
      steps: true,
    }),
  );
  const labels = [...new Set(summaries.map((s) => s.label))];
  const throughput = labels.map((label) => ({
    name: label,
    points: summaries.filter((s) => s.label === label).map((s) => [s.concurrency, s.outputTokensPerSecond] as const),
  }));
  writeFileSync(
    join(out, 'throughput.svg'),
    renderLineChart({
      title: 'Output tokens per second by concurrency',
      xLabel: 'concurrency',
      yLabel: 'tokens/s',
      series: throughput,
    }),
  );
}
