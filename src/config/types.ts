/** Which server API an upstream speaks; `auto` detects it at startup. */
export type BackendKind = 'llamacpp' | 'vllm' | 'verifier';
/** A configured kind, before detection. */
export type BackendKindSetting = BackendKind | 'auto';

/** Log verbosity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** How draft tokens are accepted at temperature > 0 (temperature 0 is always greedy). */
export type AcceptanceSetting = 'sample-match' | 'rejection';

/** Connection, header and body timeouts for one upstream role. */
export interface TimeoutConfig {
  connectTimeoutMs: number;
  /** Time until response headers arrive. */
  headersTimeoutMs: number;
  /** Longest silence between two body chunks. */
  bodyTimeoutMs: number;
}

/** One upstream role (target or draft pool). */
export interface UpstreamConfig {
  urls: string[];
  kind: BackendKindSetting;
  /** Model name sent upstream (vLLM needs it); detected when absent. */
  model: string | undefined;
  apiKey: string | undefined;
  timeouts: TimeoutConfig;
  /** A verifier target's link encoding (DSD_TARGET_LINK_ENCODING): binary, or JSON only. */
  linkEncoding?: 'binary' | 'json';
}

/** Speculative decoding settings. */
export interface SpeculationConfig {
  /** Draft tokens per round (k), or `auto`: chosen each round from measured costs and acceptance. */
  window: number | 'auto';
  windowMin: number;
  windowMax: number;
  acceptance: AcceptanceSetting;
  /** Top-N log-probabilities asked of servers when a rule needs them. */
  topLogprobs: number;
  /** Let the draft work on the optimistic continuation while the target verifies. */
  draftAhead: boolean;
  /**
   * Most rounds draft-ahead sends for verification before the previous round's verdict (hides the
   * round trip to a distant target; a miss wastes that target work). 0: draft ahead only. `auto`:
   * 2 for vLLM targets, which verify rounds side by side; 0 for llama.cpp targets, where each
   * round takes k+1 slots with no shared KV and a CPU server runs the extra rounds on the same
   * cores (measured slower: README, bench:real-network).
   */
  aheadDepth: number | 'auto';
  /**
   * Branches a proposal tree carries besides its main chain (the verifier's stream): the draft's
   * runner-up at its least sure positions, each continued. 0: chains only.
   */
  treeBranches: number;
  /** How long a failing draft is left alone before it is probed again. */
  draftCooldownMs: number;
  /**
   * With a `dsd verifier` target: `stream` (the verifier decodes by itself and verifies proposals
   * where they line up; it never waits for the network), `rounds` (rounds driven by the edge), or
   * `auto`: rounds while the link's round trip is under 5 ms, the stream beyond.
   */
  verifierMode: 'auto' | 'stream' | 'rounds';
}

/** Request limits and admission control. */
export interface LimitsConfig {
  /** Largest `max_tokens` accepted (400 above it). */
  maxTokens: number;
  /** Most chat messages accepted in one request. */
  maxMessages: number;
  /** Generation requests served at once; more wait in the queue. */
  maxConcurrency: number;
  /** Requests allowed to wait; beyond it, 429 with Retry-After. */
  maxQueue: number;
  /** Longest wait in the queue before 429. */
  queueTimeoutMs: number;
}

/** Limits per API key on generation routes (DSD_KEY_LIMITS). */
export interface KeyLimitsConfig {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Generations one key may run at once. */
  concurrency?: number;
}

/** A PEM certificate chain and its private key. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** PEM CA certificates: when set, clients must present a certificate they signed (mutual TLS). */
  clientCa?: string;
}

/** The names clients may use for the one model dsd serves. */
export interface ModelNamesConfig {
  /** Shown in /v1/models; default: the target's model name without a filesystem path. */
  servedName: string | undefined;
  /** Further names accepted for it (DSD_MODEL_ALIASES, e.g. `gpt-4o-mini=target`). */
  aliases: string[];
  /** Accept any `model` a client sends (DSD_ACCEPT_ANY_MODEL). */
  acceptAny: boolean;
}

/** The full, validated configuration of a dsd instance. */
/** A draft model loaded in the edge's own process (`DSD_DRAFT_MODEL=small.gguf`). */
export interface EmbeddedDraftConfig {
  modelPath: string;
  /** CPU threads of its evaluations (DSD_DRAFT_THREADS). */
  threads: number;
  /** Proposals it drafts at once, each in a KV sequence of its own (DSD_DRAFT_SEQUENCES). */
  sequences: number;
  /** Where native builds are cached (DSD_LLAMA_CACHE, default ~/.cache/dsd). */
  cacheDir: string;
}

export interface DsdConfig {
  /** No URLs: `dsd serve` starts the embedded demo backends. */
  target: UpstreamConfig;
  draft: UpstreamConfig;
  /** A GGUF draft in-process, first in the draft pool; undefined: none. */
  embeddedDraft: EmbeddedDraftConfig | undefined;
  models: ModelNamesConfig;
  host: string;
  port: number;
  /** Client API keys; empty means no authentication. */
  apiKeys: string[];
  /** Per-key limits (only with API keys); undefined: none. */
  keyLimits: KeyLimitsConfig | undefined;
  /**
   * `tenant`: caches, pinning, affinity and target prefix caches are per tenant; `strict`: also no
   * prompt-cache reuse on servers that cannot salt it (llama.cpp); `global`: shared by everyone.
   */
  cacheScope: 'tenant' | 'strict' | 'global';
  /** A header naming the tenant, set by a trusted gateway in front of dsd; undefined: keys only. */
  tenantHeader: string | undefined;
  logLevel: LogLevel;
  bodyLimitBytes: number;
  speculation: SpeculationConfig;
  limits: LimitsConfig;
  /** PEM certificates trusted for https upstreams, read from DSD_CA_FILE. */
  caCertificates: string | undefined;
  /** dsd's own listener over HTTPS (DSD_TLS_CERT, DSD_TLS_KEY: PEM files). */
  tls: TlsFiles | undefined;
  /** A client certificate and key (DSD_CLIENT_CERT, DSD_CLIENT_KEY) for upstreams that require one. */
  clientCertificate: { cert: string; key: string } | undefined;
  /** Log prompt text (off by default; prompts are user data). */
  logPrompts: boolean;
  /** How long in-flight requests may run after SIGTERM. */
  shutdownGraceMs: number;
  /** Attempts per target request for failures before any byte (1 = no retry). */
  targetRetryAttempts: number;
  /**
   * A generation whose target replica dies mid-way goes on on another replica (off: it ends with
   * an in-band error). With it and several replicas, target-only requests also run through the engine.
   */
  targetFailover: boolean;
  /** Prompt cache entries (exact inputs and conversations, each); 0 turns it off. */
  promptCacheEntries: number;
  /** Pin each conversation to one draft slot (llama.cpp `id_slot`) so its KV cache is hit. */
  draftSlotPinning: boolean;
  /** Share the target's slots among the speculative requests in flight (caps each one's k+1). */
  targetSlotSharing: boolean;
  /** Append every speculative round to this JSONL file. */
  traceFile: string | undefined;
  /** OTEL_* variables ask for traces (an exporter or endpoint set, SDK not disabled): `dsd serve` starts one. */
  otelTraces: boolean;
  /** Processes `dsd serve` runs (DSD_WORKERS, default: the cores available); 1: no cluster. */
  workers: number;
  /** Keep-alive connections per upstream. */
  upstreamConnections: number;
}

/** Caller overrides for a DsdConfig; nested objects merge field by field. */
export interface DsdOptions {
  target?: Partial<Omit<UpstreamConfig, 'timeouts'>> & { timeouts?: Partial<TimeoutConfig> };
  draft?: Partial<Omit<UpstreamConfig, 'timeouts'>> & { timeouts?: Partial<TimeoutConfig> };
  models?: Partial<ModelNamesConfig>;
  host?: string;
  port?: number;
  apiKeys?: string[];
  cacheScope?: 'tenant' | 'strict' | 'global';
  tenantHeader?: string;
  logLevel?: LogLevel;
  bodyLimitBytes?: number;
  speculation?: Partial<SpeculationConfig>;
  limits?: Partial<LimitsConfig>;
  logPrompts?: boolean;
  shutdownGraceMs?: number;
  targetRetryAttempts?: number;
  targetFailover?: boolean;
  promptCacheEntries?: number;
  draftSlotPinning?: boolean;
  targetSlotSharing?: boolean;
  traceFile?: string;
  upstreamConnections?: number;
}
