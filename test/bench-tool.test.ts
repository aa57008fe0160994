import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchCommand } from '../src/bench/bench-command.js';
import { loadPrompts, runLoad } from '../src/bench/load-generator.js';
import { summarize } from '../src/bench/report.js';
import { mean, percentile } from '../src/bench/stats.js';
import { cdfPoints, renderLineChart } from '../src/bench/svg-chart.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { freePort } from './helpers/llama-server.js';

describe('bench statistics', () => {
  it('percentiles interpolate between ranks', () => {
    const v = [10, 20, 30, 40, 50];
    expect(percentile(v, 0)).toBe(10);
    expect(percentile(v, 50)).toBe(30);
    expect(percentile(v, 100)).toBe(50);
    expect(percentile(v, 95)).toBeCloseTo(48, 9);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(mean([1, 2, 3, 6])).toBe(3);
  });

  it('summaries count tokens over busy time and errors by status', () => {
    const ok = (e2eMs: number, tokens: number) => ({
      ok: true,
      status: 200,
      startMs: 0,
      ttftMs: 10,
      e2eMs,
      outputTokens: tokens,
      tpotMs: 2,
    });
    const s = summarize(
      'x',
      'http://x',
      2,
      [
        ok(100, 10),
        ok(300, 30),
        {
          ok: false,
          status: 503,
          startMs: 0,
          ttftMs: undefined,
          e2eMs: 5,
          outputTokens: 0,
          tpotMs: undefined,
          error: 'busy',
        },
        {
          ok: false,
          status: 0,
          startMs: 0,
          ttftMs: undefined,
          e2eMs: 1,
          outputTokens: 0,
          tpotMs: undefined,
          error: 'ECONNREFUSED',
        },
      ],
      2_000,
    );
    expect(s).toMatchObject({
      ok: 2,
      errors: 2,
      errorsByStatus: { '503': 1, '0': 1 },
      outputTokensPerSecond: 20,
      requestsPerSecond: 1,
    });
    expect(s.e2eMs.p50).toBe(200);
  });

  it('the shipped prompt set has a few hundred prompts', () => {
    const prompts = loadPrompts();
    expect(prompts.length).toBeGreaterThanOrEqual(200);
    expect(new Set(prompts.map((p) => p.messages[0]?.content)).size).toBe(prompts.length);
  });

  it('renders a valid SVG chart with one group per series', () => {
    const svg = renderLineChart({
      title: 'T <&>',
      xLabel: 'x',
      yLabel: 'y',
      series: [
        { name: 'a', points: cdfPoints([3, 1, 2]) },
        {
          name: 'b',
          points: [
            [1, 5],
            [2, 7],
          ],
        },
      ],
      steps: true,
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('T &lt;&amp;&gt;');
    expect([...svg.matchAll(/<g class="series" data-name="([^"]+)">/g)].map((m) => m[1])).toEqual(['a', 'b']);
    expect((svg.match(/<(\w+)[\s>]/g) ?? []).length).toBeGreaterThan(10);
    expect(cdfPoints([3, 1, 2])).toEqual([
      [1, 1 / 3],
      [2, 2 / 3],
      [3, 1],
    ]);
  });
});

describe('load generator against an emulated server', () => {
  let target: LlamaEmulator;
  beforeAll(async () => {
    target = new LlamaEmulator({
      model: demoModels().target,
      alias: 'target',
      latency: { perRequestMs: 60, perTokenMs: 10 },
    });
    await target.listen();
  });
  afterAll(() => target.close());
  const prompts = [{ messages: [{ role: 'user', content: 'Once upon a time' }] }];

  it('measures TTFT and time per output token from stream timing', async () => {
    const results = await runLoad({
      url: target.url,
      model: 'target',
      concurrency: 2,
      requests: 4,
      prompts,
      maxTokens: 12,
      temperature: 0,
      stream: true,
      timeoutMs: 10_000,
    });
    expect(results.every((r) => r.ok)).toBe(true);
    for (const r of results) {
      expect(r.outputTokens).toBe(12);
      // The emulator waits 60 ms before answering, then 10 ms per token. Bounds relative to the
      // request's own end-to-end time hold on a loaded machine (an absolute 170 ms TTFT bound failed
      // once in a full suite with real servers running beside it), and a generator that reported
      // end-to-end time as TTFT still fails: the 11 tokens after the first take ≥ 110 ms.
      expect(r.ttftMs).toBeGreaterThanOrEqual(60 + 10 - 2);
      expect(r.ttftMs).toBeLessThan(r.e2eMs - 11 * 10 * 0.9);
      expect(r.tpotMs).toBeGreaterThan(8);
      expect(r.tpotMs).toBeLessThan(40);
      expect(r.e2eMs).toBeGreaterThan(r.ttftMs as number);
    }
  });

  it('counts HTTP errors and unreachable endpoints instead of crashing', async () => {
    target.fault = 'http-500';
    target.faultCount = 2;
    const failing = await runLoad({
      url: target.url,
      model: 'target',
      concurrency: 1,
      requests: 3,
      prompts,
      maxTokens: 4,
      temperature: 0,
      stream: false,
      timeoutMs: 10_000,
    });
    expect(failing.filter((r) => !r.ok).map((r) => r.status)).toEqual([500, 500]);
    expect(failing.filter((r) => r.ok)).toHaveLength(1);
    const port = await freePort();
    const dead = await runLoad({
      url: `http://127.0.0.1:${port}`,
      model: 'm',
      concurrency: 2,
      requests: 3,
      prompts,
      maxTokens: 4,
      temperature: 0,
      stream: true,
      timeoutMs: 2_000,
    });
    expect(dead.map((r) => [r.ok, r.status])).toEqual([
      [false, 0],
      [false, 0],
      [false, 0],
    ]);
    expect(dead[0]?.error).toMatch(/ECONNREFUSED|fetch failed/);
  });

  it('dsd bench writes results.json, report.md and charts; bad flags are a clear error', async () => {
    const out = mkdtempSync(join(tmpdir(), 'dsd-bench-'));
    try {
      const summaries = await benchCommand(
        [
          '--url',
          `emu=${target.url}`,
          '--concurrency',
          '1,2',
          '--requests',
          '2',
          '--max-tokens',
          '4',
          '--stream',
          '--out',
          out,
        ],
        () => undefined,
      );
      expect(summaries.map((s) => [s.label, s.concurrency, s.ok])).toEqual([
        ['emu', 1, 2],
        ['emu', 2, 2],
      ]);
      const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
      expect(json.summaries).toHaveLength(2);
      expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain('| emu | 2 | 2 / 2 |');
      expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).toContain('data-name="emu"');
      await expect(benchCommand(['--url', target.url, '--concurrency', 'many'], () => undefined)).rejects.toThrow(
        /--concurrency "many"/,
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
