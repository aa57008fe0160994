import type { TokenBytesCache } from '../cache/token-bytes-cache.js';
import type { DsdConfig } from '../config/types.js';
import type { Logger } from '../logger.js';
import type { Upstreams } from './upstreams.js';

/** Counters of how requests were served (exposed on /health and, later, /metrics). */
export interface ServeCounters {
  speculative: number;
  passthrough: number;
  /** Speculative requests that lost their draft and finished target-only. */
  draftFallbacks: number;
}

/** What every route of one dsd instance shares. */
export interface DsdContext {
  config: DsdConfig;
  upstreams: Upstreams;
  logger: Logger;
  counters: ServeCounters;
  /** Token bytes learned from upstream responses, shared by all requests. */
  bytesCache: TokenBytesCache;
}
