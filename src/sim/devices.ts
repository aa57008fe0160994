import type { Rng } from '../speculative/sampling.js';
import { draw } from './random.js';
import type { Simulation } from './event-queue.js';
import type { EdgeSpec, LinkSpec, TargetSpec } from './scenario.js';

/** A piece of work for a target: `tokens` computed in one step (or alone, exclusive). */
interface TargetWork {
  tokens: number;
  /** Runs alone (a co-located draft), not in a batch. */
  exclusiveMs?: number;
  done: () => void;
}

/** A cloud target with continuous batching: back-to-back steps over what is queued. */
export class TargetDevice {
  private readonly queue: TargetWork[] = [];
  private busy = false;
  busyMs = 0;
  /** Work items in the queue or in the running step. */
  load = 0;

  constructor(
    private readonly sim: Simulation,
    readonly spec: TargetSpec,
  ) {}

  /** Queues `tokens` for the next step; `done` runs when that step ends. */
  submit(tokens: number, done: () => void): void {
    this.enqueue({ tokens, done });
  }

  /** Occupies the device alone for `ms` (a draft model sharing the target's device). */
  exclusive(ms: number, done: () => void): void {
    this.enqueue({ tokens: 0, exclusiveMs: ms, done });
  }

  private enqueue(w: TargetWork): void {
    this.load += 1;
    this.queue.push(w);
    if (!this.busy) this.step();
  }

  private step(): void {
    const head = this.queue[0];
    if (head === undefined) {
      this.busy = false;
      return;
    }
    this.busy = true;
    let batch: TargetWork[];
    let ms: number;
    if (head.exclusiveMs !== undefined) {
      batch = [this.queue.shift() as TargetWork];
      ms = head.exclusiveMs;
    } else {
      batch = [];
      while (batch.length < this.spec.maxBatch && this.queue[0] !== undefined && this.queue[0].exclusiveMs === undefined) batch.push(this.queue.shift() as TargetWork);
      ms = this.spec.stepFixedMs + this.spec.stepPerTokenMs * batch.reduce((s, w) => s + w.tokens, 0);
    }
    this.busyMs += ms;
    this.sim.schedule(ms, () => {
      this.load -= batch.length;
      for (const w of batch) w.done();
      this.step();
    });
  }
}

/** An edge device running drafts, `concurrency` at a time. */
export class EdgeDevice {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  load = 0;

  constructor(
    private readonly sim: Simulation,
    readonly spec: EdgeSpec,
    readonly link: LinkSpec,
  ) {}

  /** Draft time for k tokens at a context length. */
  draftMs(k: number, contextTokens: number): number {
    return k * (this.spec.draftMsPerToken + (this.spec.draftMsPerContextToken ?? 0) * contextTokens);
  }

  /** Runs work of `ms` when a draft slot is free; `done` when it ends. */
  run(ms: number, done: () => void): void {
    this.load += 1;
    const start = () => {
      this.running += 1;
      this.sim.schedule(ms, () => {
        this.running -= 1;
        this.load -= 1;
        this.waiting.shift()?.();
        done();
      });
    };
    if (this.running < this.spec.concurrency) start();
    else this.waiting.push(start);
  }
}

/** Bytes carried by a link in each direction. */
export interface LinkBytes {
  up: number;
  down: number;
}

/** Sends `bytes` over a link one way: latency + jitter + serialisation; counts the bytes. */
export function transmit(sim: Simulation, link: LinkSpec, bytes: number, counter: LinkBytes, direction: 'up' | 'down', rng: Rng, done: () => void): void {
  counter[direction] += bytes;
  const jitter = link.jitterMs === undefined ? 0 : draw(link.jitterMs, rng);
  sim.schedule(link.oneWayMs + jitter + (bytes * 1000) / link.bandwidthBytesPerS, done);
}
