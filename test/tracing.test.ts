import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

/**
 * OpenTelemetry through the API only: with a provider registered (here the Node SDK's, with an
 * in-memory exporter), a request is a server span under the client's traceparent, with upstream
 * calls and speculative rounds as children, and the upstreams receive the trace context.
 */
describe('OpenTelemetry tracing', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let target: LlamaEmulator;
  let draft: LlamaEmulator;
  let dsd: TestDsd;

  beforeAll(async () => {
    provider.register();
    target = new LlamaEmulator({ model: demoModels().target, alias: 'target' });
    draft = new LlamaEmulator({ model: demoModels().draft, alias: 'draft' });
    await Promise.all([target.listen(), draft.listen()]);
    dsd = await startTestDsd({
      target: { urls: [target.url] },
      draft: { urls: [draft.url] },
      speculation: { window: 3 },
    });
  });
  afterAll(async () => {
    await dsd.close();
    await Promise.all([target.close(), draft.close()]);
    await provider.shutdown();
    trace.disable();
  });

  it('a server span under the client’s traceparent, upstream and round children, context sent upstream', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    exporter.reset();
    const r = await postJson(
      `${dsd.baseUrl}/v1/completions`,
      { model: 'target', prompt: 'Once upon a time', max_tokens: 24, temperature: 0 },
      { traceparent: `00-${traceId}-${parentId}-01` },
    );
    expect(r.status).toBe(200);
    expect(r.body.usage.dsd.rounds).toBeGreaterThan(0);
    await new Promise((done) => setTimeout(done, 50)); // the server span ends on 'close'
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const server = spans.find((s) => s.name === 'POST /v1/completions');
    expect(server).toBeDefined();
    expect(server!.parentSpanContext?.spanId).toBe(parentId);
    expect(server!.attributes['http.response.status_code']).toBe(200);
    expect(server!.attributes['dsd.completion_tokens']).toBe(24);
    const serverId = server!.spanContext().spanId;
    const children = spans.filter((s) => s.parentSpanContext?.spanId === serverId);
    const upstream = children.filter((s) => s.attributes['dsd.role'] !== undefined);
    const rounds = children.filter((s) => s.name === 'dsd.round');
    expect(upstream.some((s) => s.attributes['dsd.role'] === 'target')).toBe(true);
    expect(upstream.some((s) => s.attributes['dsd.role'] === 'draft')).toBe(true);
    expect(upstream.every((s) => typeof s.attributes['dsd.bytes_sent'] === 'number')).toBe(true);
    expect(rounds.length).toBe(r.body.usage.dsd.rounds);
    expect(rounds.reduce((n, s) => n + (s.attributes['dsd.round.accepted'] as number), 0)).toBe(
      r.body.usage.dsd.accepted_tokens,
    );
    // The upstreams saw the same trace, under one of dsd's client spans.
    expect(target.stats.lastTraceparent?.split('-')[1]).toBe(traceId);
    const upstreamIds = new Set(upstream.map((s) => s.spanContext().spanId));
    expect(upstreamIds.has(target.stats.lastTraceparent?.split('-')[2] ?? '')).toBe(true);
  });
});

describe('OTEL_* variables', () => {
  it('ask for traces with an exporter or OTLP endpoint, unless the SDK is disabled or the exporter none', async () => {
    const { loadConfig } = await import('../src/config/load-config.js');
    expect(loadConfig({}).otelTraces).toBe(false);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).otelTraces).toBe(true);
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'otlp' }).otelTraces).toBe(true);
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).otelTraces).toBe(
      false,
    );
    expect(loadConfig({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }).otelTraces).toBe(false);
  });
});
