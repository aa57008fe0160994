/** A scheduled action at a simulated time; ties run in scheduling order. */
interface Event {
  time: number;
  seq: number;
  action: () => void;
}

/** The discrete-event core: a simulated clock and a binary heap of pending events. No wall-clock sleeps. */
export class Simulation {
  private heap: Event[] = [];
  private seq = 0;
  /** Simulated time, ms. */
  now = 0;
  /** Events run so far. */
  processed = 0;

  /** Runs `action` after `delayMs` of simulated time. */
  schedule(delayMs: number, action: () => void): void {
    this.push({ time: this.now + Math.max(0, delayMs), seq: this.seq++, action });
  }

  /** Runs events until none is left (or the clock passes `untilMs`). */
  run(untilMs = Infinity): void {
    while (this.heap.length > 0) {
      const e = this.pop();
      if (e.time > untilMs) {
        this.push(e);
        return;
      }
      this.now = e.time;
      this.processed += 1;
      e.action();
    }
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(e, h[p] as Event)) break;
      h[i] = h[p] as Event;
      i = p;
    }
    h[i] = e;
  }

  private pop(): Event {
    const h = this.heap;
    const top = h[0] as Event;
    const last = h.pop() as Event;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let best = last;
        if (l < h.length && less(h[l] as Event, best)) {
          m = l;
          best = h[l] as Event;
        }
        if (r < h.length && less(h[r] as Event, best)) m = r;
        if (m === i) break;
        h[i] = h[m] as Event;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

function less(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
