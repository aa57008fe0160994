import {
  type Attributes,
  context,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

/**
 * OpenTelemetry tracing through the API only: dsd never forces an SDK on its users. Without a
 * registered tracer provider every call here is a no-op (the API's default), so tracing costs a
 * function call. With one (the user's own, or the one `dsd serve` starts when OTEL_* variables ask
 * for it), each request is a server span, each upstream call and each speculative round a child,
 * and upstream calls carry W3C `traceparent`.
 */
export const tracer = trace.getTracer('dsd');

/**
 * Whether a tracer provider is registered (the API's global proxy has a delegate). Without one every
 * span is a no-op, so a request need not build names, attributes or listeners for it.
 */
export function tracerRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer('dsd') !== undefined;
}

/** Whether the active context has a span that records (a provider is registered and sampled). */
export function tracing(): boolean {
  return trace.getSpan(context.active())?.isRecording() ?? false;
}

/** The server span of one incoming request, a child of its `traceparent` when it has one. */
export function startRequestSpan(
  name: string,
  headers: Record<string, string | string[] | undefined>,
  attributes: Attributes,
): { span: Span; run: <T>(fn: () => T) => T } {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  const ctx = trace.setSpan(parent, span);
  return { span, run: (fn) => context.with(ctx, fn) };
}

/** Ends a request span with its HTTP status (5xx is an error, as OpenTelemetry's HTTP rules say). */
export function endRequestSpan(span: Span, status: number, attributes: Attributes): void {
  span.setAttributes({ 'http.response.status_code': status, ...attributes });
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** Headers plus the active trace context (`traceparent`, `tracestate`); the same object when none. */
export function withTraceHeaders(headers: Record<string, string>): Record<string, string> {
  if (!tracing()) return headers;
  const out = { ...headers };
  propagation.inject(context.active(), out);
  return out;
}

/**
 * Runs `fn` in a client span for one upstream call; the span ends when `fn` settles. Without an
 * active recording span it only calls `fn`: the span's name and attributes are built only when traced.
 */
export async function inClientSpan<T>(
  describe: () => { name: string; attributes: Attributes },
  fn: () => Promise<T>,
): Promise<T> {
  if (!tracing()) return fn();
  const { name, attributes } = describe();
  return tracer.startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    try {
      return await fn();
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** A finished piece of work as a child span of the active one, timed after the fact. */
export function recordChildSpan(name: string, durationMs: number, attributes: Attributes): void {
  if (!tracing()) return;
  const end = Date.now();
  tracer.startSpan(name, { startTime: end - durationMs, attributes }).end(end);
}
