import type { TargetEngine } from '../../engine/types.js';
import type { Logger } from '../../logger.js';

/** Bounds and keys of the link. */
export interface LinkServerOptions {
  engine: TargetEngine;
  /** Edge keys; empty: no authentication (loopback set-ups only). */
  keys: readonly string[];
  maxSessionsPerConnection: number;
  maxFrameBytes: number;
  idleTimeoutMs: number;
  maxDraftTokens: number;
  logger: Logger;
}

/** Link counters, for /metrics and the dashboard. */
export interface LinkStats {
  connections: number;
  sessions: number;
  rounds: number;
  /** Early rounds answered stale without an evaluation (the last verdict refuted them). */
  staleRounds: number;
  draftTokens: number;
  /** Draft tokens left unverified because the target was shared (draftsWorthVerifying). */
  unverifiedDraftTokens: number;
  /** Stream steps that verified a tree's branch: a rejection that cost no round trip. */
  branchSteps: number;
  /** Draft tokens a continued chain did not send again: the chain before it held them (version 3). */
  continuedDrafts: number;
  badFrames: number;
  bytesIn: number;
  bytesOut: number;
}
