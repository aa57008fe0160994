import type { LimitsConfig } from '../../config/types.js';
import { DsdError } from '../../errors.js';
import type { DsdMetrics } from '../metrics.js';

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Concurrency limit with a bounded FIFO queue: up to `maxConcurrency` generation requests run; up
 * to `maxQueue` wait (each at most `queueTimeoutMs`); beyond that a request is refused at once
 * with 429 and Retry-After. A waiter whose client leaves is removed from the queue.
 */
export class Admission {
  private running = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    private readonly limits: LimitsConfig,
    private readonly metrics: DsdMetrics,
  ) {}

  /** Waits for a slot; the returned function gives it back (idempotent). */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (this.running < this.limits.maxConcurrency) return Promise.resolve(this.grant());
    if (this.queue.length >= this.limits.maxQueue) {
      this.metrics.rejected.inc({ reason: 'queue_full' });
      return Promise.reject(
        new DsdError('rate_limit_exceeded', 'too many requests in flight; retry shortly', { retryAfterSeconds: 1 }),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.remove(waiter);
          this.metrics.rejected.inc({ reason: 'queue_timeout' });
          reject(
            new DsdError('rate_limit_exceeded', 'waited too long for a free slot; retry shortly', {
              retryAfterSeconds: 2,
            }),
          );
        }, this.limits.queueTimeoutMs),
      };
      signal.addEventListener(
        'abort',
        () => {
          if (this.remove(waiter)) reject(signal.reason as Error);
        },
        { once: true },
      );
      this.queue.push(waiter);
      this.metrics.queued.set(this.queue.length);
    });
  }

  private grant(): () => void {
    this.running += 1;
    this.metrics.inFlight.set(this.running);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running -= 1;
      const next = this.queue.shift();
      this.metrics.queued.set(this.queue.length);
      if (next !== undefined) {
        clearTimeout(next.timer);
        next.resolve(this.grant());
      }
      this.metrics.inFlight.set(this.running);
    };
  }

  private remove(waiter: Waiter): boolean {
    const i = this.queue.indexOf(waiter);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    clearTimeout(waiter.timer);
    this.metrics.queued.set(this.queue.length);
    return true;
  }

  /** Requests being served now. */
  get inFlight(): number {
    return this.running;
  }
}
