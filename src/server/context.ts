import type { PromptCache } from '../cache/prompt-cache.js';
import type { TokenBytesCache } from '../cache/token-bytes-cache.js';
import type { DsdConfig } from '../config/types.js';
import type { Logger } from '../logger.js';
import type { RoundTrace } from './generation/round-trace.js';
import type { Admission } from './http/admission.js';
import type { DsdMetrics } from './metrics.js';
import type { Upstreams } from './upstreams/upstreams.js';

/** Counters of how requests were served (also in /metrics). */
export interface ServeCounters {
  speculative: number;
  passthrough: number;
  /** Speculative requests that lost a draft and went on with another or the target alone. */
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
  /** Prompt ids by exact input and by conversation; undefined when turned off. */
  promptCache: PromptCache | undefined;
  metrics: DsdMetrics;
  admission: Admission;
  /** Set on shutdown: /ready turns 503 and new generation requests are refused. */
  draining: boolean;
  /** The round trace (DSD_TRACE_FILE), when configured. */
  trace: RoundTrace | undefined;
}
