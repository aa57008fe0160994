import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigError, loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { createLogger } from '../src/logger.js';
import { createApp } from '../src/server/http/app.js';
import { postJson } from './helpers/dsd.js';

const models = demoModels();

describe('metrics, request ids and log lines', () => {
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  let base: string;
  const lines: Record<string, unknown>[] = [];
  let close: () => Promise<void>;

  beforeAll(async () => {
    target = new LlamaEmulator({ model: models.target, alias: 'target' });
    draft = new LlamaEmulator({ model: models.draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    const config = loadConfig(
      {},
      {
        target: { urls: [target.url], apiKey: 'sk-upstream-secret' },
        draft: { urls: [draft.url] },
        speculation: { window: 3 },
      },
    );
    const { app, router } = createApp({ config, logger: createLogger('info', (line) => lines.push(JSON.parse(line))) });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      server.close();
      await router.close();
    };
  });
  afterAll(async () => {
    await close();
    await Promise.all([target.close(), draft.close()]);
  });

  it('exposes Prometheus metrics that move with traffic', async () => {
    const secretPrompt = 'Once upon a time, a secret prompt';
    const r = await postJson(`${base}/v1/completions`, {
      model: 'target',
      prompt: secretPrompt,
      max_tokens: 24,
      temperature: 0,
    });
    expect(r.status).toBe(200);
    await postJson(`${base}/v1/completions`, { model: 'target', prompt: 'x', max_tokens: 0 });
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
    expect(value(/^dsd:spec_decode_num_drafts_total (\d+)/m)).toBe(r.body.usage.dsd.rounds);
    expect(value(/^dsd:spec_decode_num_draft_tokens_total (\d+)/m)).toBe(r.body.usage.dsd.draft_tokens);
    expect(value(/^dsd:spec_decode_num_accepted_tokens_total (\d+)/m)).toBe(r.body.usage.dsd.accepted_tokens);
    expect(text).toMatch(/^dsd:spec_decode_num_accepted_tokens_per_pos_total\{position="0"\} \d+/m);
    const early = r.body.usage.dsd.draft_ahead_early_verifications as number;
    const wasted = r.body.usage.dsd.draft_ahead_wasted_verifications as number;
    expect(value(/^dsd_early_verifications_total\{outcome="used"\} (\d+)/m)).toBe(early - wasted);
    expect(value(/^dsd_early_verifications_total\{outcome="wasted"\} (\d+)/m)).toBe(wasted);
    expect(value(/^dsd_http_requests_total\{route="completions",status="200"\} (\d+)/m)).toBe(1);
    expect(value(/^dsd_http_requests_total\{route="completions",status="400"\} (\d+)/m)).toBe(1);
    expect(text).toMatch(/^dsd_time_to_first_token_seconds_count\{route="completions",mode="speculative"\} 1/m);
    expect(text).toMatch(/^dsd_time_per_output_token_seconds_count\{route="completions",mode="speculative"\} 1/m);
    expect(text).toMatch(
      new RegExp(
        '^dsd_upstream_request_duration_seconds_count' +
          '\\{role="draft",upstream="http://127\\.0\\.0\\.1:\\d+",operation="completion",outcome="ok"\\} \\d+',
        'm',
      ),
    );
    expect(text).toMatch(/^dsd_http_in_flight_requests 0/m);
    expect(text).toMatch(/^dsd_process_resident_memory_bytes \d+/m);
    expect(text).not.toContain('sk-upstream-secret');
    expect(text).not.toContain(secretPrompt);
  });

  it('one summary line per request with the request id; no prompt text or secrets', async () => {
    lines.length = 0;
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'client-abc-123' },
      body: JSON.stringify({
        model: 'target',
        messages: [{ role: 'user', content: 'my private words' }],
        max_tokens: 8,
        temperature: 0,
      }),
    });
    expect(res.headers.get('x-request-id')).toBe('client-abc-123');
    await res.json();
    await new Promise((r) => setTimeout(r, 20));
    const summaries = lines.filter((l) => l.msg === 'request');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      requestId: 'client-abc-123',
      status: 200,
      method: 'POST',
      mode: 'speculative',
      model: 'target',
    });
    expect(JSON.stringify(lines)).not.toContain('my private words');
    expect(JSON.stringify(lines)).not.toContain('sk-upstream-secret');
    const bad = await fetch(`${base}/health`, { headers: { 'x-request-id': 'bad id with spaces\n' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('limits and admission control', () => {
  it('max_tokens and messages above the limits → 400 naming the field', async () => {
    const target = new LlamaEmulator({ model: models.target, alias: 'target' });
    await target.listen();
    const { app, router } = createApp({
      config: loadConfig({}, { target: { urls: [target.url] }, limits: { maxTokens: 100, maxMessages: 2 } }),
      logger: createLogger('silent'),
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
    try {
      const tooMany = await postJson(url, {
        model: 'target',
        messages: [1, 2, 3].map(() => ({ role: 'user', content: 'x' })),
      });
      expect(tooMany.status).toBe(400);
      expect(tooMany.body.error.param).toBe('messages');
      const tooLong = await postJson(url, {
        model: 'target',
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: 101,
      });
      expect(tooLong.status).toBe(400);
      expect(tooLong.body.error.param).toBe('max_tokens');
    } finally {
      server.closeAllConnections();
      server.close();
      await router.close();
      await target.close();
    }
  });

  it('beyond concurrency + queue → 429 with Retry-After; queued requests are served in turn', async () => {
    const target = new LlamaEmulator({ model: models.target, alias: 'target', latency: { perRequestMs: 150 } });
    await target.listen();
    const { app, router } = createApp({
      config: loadConfig({}, { target: { urls: [target.url] }, limits: { maxConcurrency: 1, maxQueue: 1 } }),
      logger: createLogger('silent'),
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/completions`;
    try {
      await postJson(url, { model: 'target', prompt: 'warm', max_tokens: 1 });
      const results = await Promise.all(
        [0, 1, 2].map((i) =>
          new Promise((r) => setTimeout(r, i * 20)).then(() =>
            postJson(url, { model: 'target', prompt: 'Once', max_tokens: 2 }),
          ),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 200, 429]);
      const limited = results.find((r) => r.status === 429)!;
      expect(limited.headers.get('retry-after')).toBe('1');
      expect(limited.body.error.code).toBe('rate_limit_exceeded');
    } finally {
      server.closeAllConnections();
      server.close();
      await router.close();
      await target.close();
    }
  });
});

describe('API keys from a file', () => {
  it('reads keys (one per line, # comments) and reports an unreadable file with the other problems', () => {
    const files: Record<string, string> = { '/keys': 'k-one\n# comment\n\nk-two\n' };
    const read = (path: string) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      return text;
    };
    expect(loadConfig({ DSD_API_KEY: 'k-env', DSD_API_KEY_FILE: '/keys' }, {}, read).apiKeys).toEqual([
      'k-env',
      'k-one',
      'k-two',
    ]);
    try {
      loadConfig({ DSD_API_KEY_FILE: '/missing', DSD_PORT: 'x' }, {}, read);
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toHaveLength(2);
      expect((err as ConfigError).problems[0]).toMatch(/DSD_API_KEY_FILE="\/missing": cannot read the file \(ENOENT\)/);
    }
  });
});

describe('round trace (DSD_TRACE_FILE)', () => {
  it('appends one JSON line per speculative round with k, accepted, draft, verify and wall ms', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'dsd-trace-'));
    const path = join(dir, 'rounds.jsonl');
    const target = new LlamaEmulator({ model: models.target, alias: 'target' });
    const draft = new LlamaEmulator({ model: models.draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    const { app, router } = createApp({
      config: loadConfig(
        { DSD_TRACE_FILE: path },
        { target: { urls: [target.url] }, draft: { urls: [draft.url] }, speculation: { window: 3 } },
      ),
      logger: createLogger('silent'),
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const r = await postJson(
        `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/completions`,
        { model: 'target', prompt: 'Once upon a time', max_tokens: 20, temperature: 0 },
        { 'x-request-id': 'trace-me' },
      );
      server.closeAllConnections();
      server.close();
      await router.close();
      const lines = readFileSync(path, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toHaveLength(r.body.usage.dsd.rounds);
      expect(lines[0]).toMatchObject({ requestId: 'trace-me', k: 3, draft: draft.url, target: target.url });
      expect(lines.reduce((s: number, l: { accepted: number }) => s + l.accepted, 0)).toBe(
        r.body.usage.dsd.accepted_tokens,
      );
      expect(lines[0].wallMs).toBeCloseTo(lines[0].draftMs + lines[0].verifyMs, 6);
    } finally {
      await Promise.all([target.close(), draft.close()]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
