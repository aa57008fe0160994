import { draftsWorthVerifying, streamWindow } from '../speculative/batch-window.js';
import { DecayingMean } from '../speculative/decaying-stats.js';
import { PositionAcceptance } from '../speculative/estimates.js';
import type { AcceptanceView } from '../speculative/generation-acceptance.js';
import type { Rng } from '../speculative/sampling.js';
import type { Simulation } from './event-queue.js';
import { linearStepCost, stepMs } from './profiles.js';
import { draw } from './random.js';
import { type EdgeSpec, type LinkSpec, stageLinksMs, type TargetSpec, targetStepCost } from './scenario.js';

/** A piece of work for a target: `tokens` computed in one step. */
interface TargetWork {
  tokens: number;
  done: () => void;
}

/** Draft work of a co-located draft model: `remaining` one-token draft steps. */
interface DraftWork {
  remaining: number;
  stepMs: number;
  done: () => void;
}

/**
 * A cloud target with continuous batching: back-to-back steps over what is queued. A draft model
 * sharing the device (single-node speculative decoding) runs batched draft steps between target
 * steps: each advances every pending draft by one token.
 */
export class TargetDevice {
  private readonly queue: TargetWork[] = [];
  private readonly drafts: DraftWork[] = [];
  private busy = false;
  busyMs = 0;
  /** Work items in the queue or in the running step. */
  load = 0;
  /** A verifier beside this target: the drafts it verified, by position (the shared-target window). */
  readonly verified = new PositionAcceptance(0.98);
  /** Other work items in each step, as a verifier measures its batch peers. */
  private readonly peers = new DecayingMean(0.9);

  constructor(
    private readonly sim: Simulation,
    readonly spec: TargetSpec,
  ) {}

  /** Queues `tokens` for the next step; `done` runs when that step ends. */
  submit(tokens: number, done: () => void): void {
    this.load += 1;
    this.queue.push({ tokens, done });
    if (!this.busy) this.step();
  }

  /** Other work items in each step so far (a decaying mean), as the verifier measures them. */
  get meanPeers(): number {
    return this.peers.value ?? 0;
  }

  /** How many of k proposed drafts a verifier beside this target verifies (the verifier's rule),
   *  by the generation's acceptance as the verifier tracks it. */
  worthVerifying(k: number, acceptance: AcceptanceView): number {
    return draftsWorthVerifying(k, acceptance, this.batchCost());
  }

  /** The window a verifier beside this target tells a stream it would verify at (streamWindow). */
  streamWindow(most: number, acceptance: AcceptanceView): number | undefined {
    return streamWindow(most, acceptance, this.batchCost());
  }

  private batchCost() {
    // A verifier measures whole steps: the links between a partitioned target's stages are fixed cost.
    const linear = linearStepCost(targetStepCost(this.spec));
    const fixedMs = linear.fixedMs + stageLinksMs(this.spec.stages);
    return { fixedMs, positionMs: linear.positionMs, peers: this.peers.value ?? 0 };
  }

  /** k draft tokens from a co-located draft model, in batched draft steps of `stepMs` each. */
  draft(k: number, stepMs: number, done: () => void): void {
    if (k <= 0) {
      this.sim.schedule(0, done);
      return;
    }
    this.load += 1;
    this.drafts.push({ remaining: k, stepMs, done });
    if (!this.busy) this.step();
  }

  private step(): void {
    if (this.drafts.length > 0) return this.draftStep();
    if (this.queue.length === 0) {
      this.busy = false;
      return;
    }
    this.busy = true;
    const batch: TargetWork[] = [];
    while (batch.length < this.spec.maxBatch && this.queue.length > 0) batch.push(this.queue.shift() as TargetWork);
    const positions = batch.reduce((s, w) => s + w.tokens, 0);
    const compute = stepMs(targetStepCost(this.spec), positions, batch.length);
    const ms = compute + stageLinksMs(this.spec.stages);
    for (let i = 0; i < batch.length; i++) this.peers.add(batch.length - 1);
    this.busyMs += ms;
    this.sim.schedule(ms, () => {
      this.load -= batch.length;
      for (const w of batch) w.done();
      this.step();
    });
  }

  private draftStep(): void {
    this.busy = true;
    const batch = this.drafts.slice(0, this.spec.maxBatch);
    const ms = Math.max(...batch.map((d) => d.stepMs));
    this.busyMs += ms;
    this.sim.schedule(ms, () => {
      for (const d of batch) {
        d.remaining -= 1;
        if (d.remaining === 0) {
          this.drafts.splice(this.drafts.indexOf(d), 1);
          this.load -= 1;
          d.done();
        }
      }
      this.step();
    });
  }
}

/** An edge device running drafts, `concurrency` at a time. */
export class EdgeDevice {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Draft work running or waiting for a slot. */
  load = 0;
  /** Requests this edge serves now (what edge routing balances). */
  requests = 0;

  constructor(
    private readonly sim: Simulation,
    readonly spec: EdgeSpec,
    readonly link: LinkSpec,
  ) {}

  /** Draft time for k tokens at a context length (one request). */
  draftMs(k: number, contextTokens: number): number {
    if (k <= 0) return 0;
    const perToken = this.spec.draftMsPerToken + (this.spec.draftMsPerContextToken ?? 0) * contextTokens;
    return (this.spec.draftMsPerRequest ?? 0) + k * perToken;
  }

  /**
   * Runs work of `ms` when a draft slot is free; `done` when it ends, with the time since the call.
   * That elapsed time, the wait for a slot included, is what a real edge measures of a draft
   * request (llama-server queues it for a free slot the same way), so it is what planners learn.
   */
  run(ms: number, done: (elapsedMs: number) => void): void {
    this.load += 1;
    const queued = this.sim.now;
    const start = () => {
      this.running += 1;
      this.sim.schedule(ms, () => {
        this.running -= 1;
        this.load -= 1;
        this.waiting.shift()?.();
        done(this.sim.now - queued);
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
export function transmit(
  sim: Simulation,
  link: LinkSpec,
  bytes: number,
  counter: LinkBytes,
  direction: 'up' | 'down',
  rng: Rng,
  done: () => void,
): void {
  counter[direction] += bytes;
  const jitter = link.jitterMs === undefined ? 0 : draw(link.jitterMs, rng);
  sim.schedule(link.oneWayMs + jitter + (bytes * 1000) / link.bandwidthBytesPerS, done);
}
