import type { PairEstimates } from '../speculative/estimates.js';
import type { Rng } from '../speculative/sampling.js';
import type { SpeculationStats } from '../speculative/stats.js';
import type { AcceptanceModel } from './acceptance-model.js';
import type { EdgeDevice, LinkBytes, TargetDevice } from './devices.js';
import type { Simulation } from './event-queue.js';
import type { Scenario, StrategySpec } from './scenario.js';

/** What happened to one simulated request. */
export interface RequestRecord {
  arrivalMs: number;
  firstTokenMs: number | undefined;
  endMs: number | undefined;
  tokens: number;
  stats: SpeculationStats;
}

/** Everything one request's flow needs. */
export interface FlowContext {
  sim: Simulation;
  rng: Rng;
  scenario: Scenario;
  strategy: StrategySpec;
  edge: EdgeDevice;
  target: TargetDevice;
  bytes: LinkBytes;
  acceptance: AcceptanceModel;
  /** The pair's estimates (adaptive strategies), shared across requests. */
  estimates: PairEstimates;
  promptTokens: number;
  outputTokens: number;
  record: RequestRecord;
  done: () => void;
}

/** Bytes on the wire when the scenario does not say. */
export const WIRE = { bytesPerPromptToken: 5, bytesPerRequest: 400, bytesPerPosition: 120 };

/**
 * Bytes of a link frame around its token ids (`dsd verifier`, dsd-link.2: MessagePack arrays, ids
 * as varints; a stream's tok frame is 11 + 2 bytes, a 4-draft prop 19 + 6).
 */
export const LINK_FRAME = { bytesPerFrame: 12, bytesPerToken: 2 };

/** Tokens the target computes to score k+1 positions. */
export function verifyTokens(c: FlowContext, k: number): number {
  return c.scenario.targets.verifyTokens === 'shared-prefix' ? k + 1 : ((k + 1) * (k + 2)) / 2;
}

/** The client (at the edge, with dsd) receives tokens. */
export function deliver(c: FlowContext, n: number): boolean {
  c.record.firstTokenMs ??= c.sim.now;
  c.record.tokens += n;
  if (c.record.tokens >= c.outputTokens) {
    c.record.tokens = c.outputTokens;
    c.record.endMs = c.sim.now;
    c.done();
    return true;
  }
  return false;
}
