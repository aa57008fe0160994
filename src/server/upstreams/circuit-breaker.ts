/** A breaker's state. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Options of a circuit breaker. */
export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** First open period; doubles after each failed probe, up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
  now: () => number;
}

/**
 * Circuit breaker with half-open probing: after `failureThreshold` consecutive failures the member
 * is skipped for a cooldown; then one request may try it (half-open); success closes the breaker,
 * failure opens it again for twice as long.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private cooldown: number;
  private probing = false;
  private current: BreakerState = 'closed';

  constructor(private readonly o: BreakerOptions) {
    this.cooldown = o.cooldownMs;
  }

  /** The state now (an open breaker turns half-open once its cooldown has passed). */
  get state(): BreakerState {
    if (this.current === 'open' && this.o.now() - this.openedAt >= this.cooldown) this.current = 'half-open';
    return this.current;
  }

  /** Whether a request may use the member now; in half-open only one probe at a time. */
  tryAcquire(): boolean {
    switch (this.state) {
      case 'closed':
        return true;
      case 'open':
        return false;
      case 'half-open':
        if (this.probing) return false;
        this.probing = true;
        return true;
    }
  }

  /** The member answered well. Returns true when this closed a non-closed breaker (it came back). */
  succeeded(): boolean {
    const cameBack = this.current !== 'closed';
    this.failures = 0;
    this.probing = false;
    this.current = 'closed';
    this.cooldown = this.o.cooldownMs;
    return cameBack;
  }

  /** The member failed. */
  failed(): void {
    this.failures += 1;
    const wasProbe = this.current === 'half-open';
    this.probing = false;
    if (wasProbe || this.failures >= this.o.failureThreshold) {
      if (wasProbe) this.cooldown = Math.min(this.o.maxCooldownMs, this.cooldown * 2);
      this.current = 'open';
      this.openedAt = this.o.now();
    }
  }
}
