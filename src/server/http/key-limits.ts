import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { Counter, type Registry } from 'prom-client';
import type { KeyLimitsConfig } from '../../config/types.js';
import { DsdError } from '../../errors.js';

/** The label a key goes by in metrics and logs: a digest prefix, never the key. */
export function tenantOf(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** A bucket that refills `perMinute` units a minute up to `perMinute`, and may be overdrawn. */
class MinuteBucket {
  private level: number;
  private at: number;

  constructor(
    private readonly perMinute: number,
    now: number,
  ) {
    this.level = perMinute;
    this.at = now;
  }

  private refill(now: number): void {
    this.level = Math.min(this.perMinute, this.level + ((now - this.at) * this.perMinute) / 60_000);
    this.at = now;
  }

  /** Milliseconds until `units` can be taken (0: now). */
  waitMs(units: number, now: number): number {
    this.refill(now);
    return this.level >= units ? 0 : ((units - this.level) * 60_000) / this.perMinute;
  }

  take(units: number, now: number): void {
    this.refill(now);
    this.level -= units;
  }
}

interface KeyState {
  requests: MinuteBucket | undefined;
  tokens: MinuteBucket | undefined;
  inFlight: number;
}

/**
 * Per-key limits on generation routes (DSD_KEY_LIMITS): requests per minute, generated tokens per
 * minute (charged when a response ends, so a key over its budget waits until it refills) and
 * generations at once. Past a limit: 429 `rate_limit_exceeded` with Retry-After. Keys are known
 * only by their digest (`tenant`), in state and in metrics.
 */
export function keyLimits(limits: KeyLimitsConfig, registry: Registry, now = () => Date.now()): RequestHandler {
  const keys = new Map<string, KeyState>();
  const rejected = new Counter({
    name: 'dsd_key_rejected_total',
    help: 'Generation requests refused by a per-key limit, by key digest and limit',
    labelNames: ['key', 'limit'],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'dsd_key_generated_tokens_total',
    help: 'Tokens generated per key digest',
    labelNames: ['key'],
    registers: [registry],
  });
  const stateOf = (tenant: string): KeyState => {
    let s = keys.get(tenant);
    if (s === undefined) {
      const t = now();
      s = {
        requests: limits.requestsPerMinute === undefined ? undefined : new MinuteBucket(limits.requestsPerMinute, t),
        tokens: limits.tokensPerMinute === undefined ? undefined : new MinuteBucket(limits.tokensPerMinute, t),
        inFlight: 0,
      };
      keys.set(tenant, s);
    }
    return s;
  };
  const refuse = (tenant: string, limit: string, waitMs: number, what: string) => {
    rejected.inc({ key: tenant, limit });
    return new DsdError('rate_limit_exceeded', `${what} for this API key; retry in ${Math.ceil(waitMs / 1000)} s`, {
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    });
  };
  return (_req, res, next) => {
    const tenant = res.locals.tenant as string | undefined;
    if (tenant === undefined) return next();
    const s = stateOf(tenant);
    const t = now();
    if (limits.concurrency !== undefined && s.inFlight >= limits.concurrency)
      return next(refuse(tenant, 'concurrency', 1000, `at most ${limits.concurrency} generations at once`));
    const tokenWait = s.tokens?.waitMs(0, t) ?? 0;
    if (tokenWait > 0)
      return next(refuse(tenant, 'tokens_per_minute', tokenWait, 'the tokens-per-minute budget is spent'));
    const requestWait = s.requests?.waitMs(1, t) ?? 0;
    if (requestWait > 0)
      return next(refuse(tenant, 'requests_per_minute', requestWait, 'too many requests per minute'));
    s.requests?.take(1, t);
    s.inFlight += 1;
    res.once('close', () => {
      s.inFlight -= 1;
      const generated = (res.locals.summary as { completionTokens?: number } | undefined)?.completionTokens ?? 0;
      s.tokens?.take(generated, now());
      tokens.inc({ key: tenant }, generated);
    });
    next();
  };
}
