/**
 * A retry budget per upstream (token bucket): every request earns `ratio` of a retry, up to
 * `max` saved; every retry spends one. Retries therefore add at most about `ratio` to the load an
 * upstream sees, so a failing upstream is not hit by a retry storm.
 */
export class RetryBudget {
  private balance: number;

  constructor(
    private readonly ratio = 0.1,
    private readonly max = 10,
  ) {
    this.balance = max;
  }

  /** Called for every first attempt. */
  deposit(): void {
    this.balance = Math.min(this.max, this.balance + this.ratio);
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(): boolean {
    if (this.balance < 1) return false;
    this.balance -= 1;
    return true;
  }
}
