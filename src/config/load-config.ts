import { readFileSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import type {
  AcceptanceSetting,
  BackendKindSetting,
  DsdConfig,
  DsdOptions,
  EmbeddedDraftConfig,
  KeyLimitsConfig,
  LogLevel,
  TimeoutConfig,
  TlsFiles,
  UpstreamConfig,
} from './types.js';

/** Every invalid configuration value, reported together. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Collects problems while reading variables, so all of them are reported at once. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`);
    return fallback;
  }

  urls(name: string): string[] {
    const raw = this.string(name);
    if (raw === undefined) return [];
    const urls: string[] = [];
    for (const part of raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const url = normalizeUrl(part);
      if (url === undefined) this.problems.push(`${name}: ${JSON.stringify(part)} is not an http(s) URL`);
      else urls.push(url);
    }
    return urls;
  }
}

/** Returns the URL without a trailing slash or `/v1`, or undefined when it is not http(s). */
export function normalizeUrl(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

const KINDS = ['auto', 'llamacpp', 'vllm', 'verifier'] as const satisfies readonly BackendKindSetting[];
const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const satisfies readonly LogLevel[];
const ACCEPTANCE = ['sample-match', 'rejection'] as const satisfies readonly AcceptanceSetting[];
const DAY_MS = 86_400_000;

/** DSD_WINDOW: `auto` or a number of draft tokens; -1 stands for auto until resolved. */
function readWindow(r: EnvReader): number {
  const raw = r.string('DSD_WINDOW');
  if (raw === undefined || raw === 'auto') return -1;
  const k = Number(raw);
  if (!/^\d+$/.test(raw) || k > 64) {
    r.problems.push(`DSD_WINDOW=${JSON.stringify(raw)}: expected auto or an integer from 0 to 64`);
    return -1;
  }
  return k;
}

function readAheadDepth(r: EnvReader): number | 'auto' {
  const raw = r.string('DSD_DRAFT_AHEAD_DEPTH');
  if (raw === undefined || raw === 'auto') return 'auto';
  const d = Number(raw);
  if (!/^\d+$/.test(raw) || d > 8) {
    r.problems.push(`DSD_DRAFT_AHEAD_DEPTH=${JSON.stringify(raw)}: expected auto or an integer from 0 to 8`);
    return 'auto';
  }
  return d;
}

function readTimeouts(r: EnvReader, prefix: string, defaults: TimeoutConfig): TimeoutConfig {
  return {
    connectTimeoutMs: r.int(`${prefix}_CONNECT_TIMEOUT_MS`, defaults.connectTimeoutMs, 1, DAY_MS),
    headersTimeoutMs: r.int(`${prefix}_HEADERS_TIMEOUT_MS`, defaults.headersTimeoutMs, 1, DAY_MS),
    bodyTimeoutMs: r.int(`${prefix}_BODY_TIMEOUT_MS`, defaults.bodyTimeoutMs, 1, DAY_MS),
  };
}

function readUpstream(r: EnvReader, role: 'TARGET' | 'DRAFT', defaults: TimeoutConfig): UpstreamConfig {
  const prefix = `DSD_${role}`;
  const urls = r.urls(`${prefix}_URL`);
  return {
    urls,
    kind: r.oneOf(`${prefix}_KIND`, KINDS, 'auto'),
    model: r.string(`${prefix}_MODEL`),
    apiKey: r.string(`${prefix}_API_KEY`),
    timeouts: readTimeouts(r, prefix, defaults),
    ...(role === 'TARGET' ? { linkEncoding: r.oneOf(`${prefix}_LINK_ENCODING`, LINK_ENCODINGS, 'binary') } : {}),
  };
}

const LINK_ENCODINGS = ['binary', 'json'] as const;

function isGgufFile(name: string | undefined): name is string {
  return name !== undefined && /\.gguf$/i.test(name);
}

/** DSD_DRAFT_MODEL=FILE.gguf: a draft in the edge's own process (DSD_DRAFT_THREADS, DSD_DRAFT_SEQUENCES). */
function readEmbeddedDraft(r: EnvReader, model: string | undefined): EmbeddedDraftConfig | undefined {
  const threads = r.int('DSD_DRAFT_THREADS', 1, 1, 1024);
  const sequences = r.int('DSD_DRAFT_SEQUENCES', 8, 1, 1024);
  const cacheDir = r.string('DSD_LLAMA_CACHE') ?? join(r.string('HOME') ?? homedir(), '.cache', 'dsd');
  return isGgufFile(model) ? { modelPath: model, threads, sequences, cacheDir } : undefined;
}

/** Whether the standard OpenTelemetry variables ask for traces (the SDK itself reads the rest). */
function readOtelTraces(r: EnvReader): boolean {
  if (r.string('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  const exporter = r.string('OTEL_TRACES_EXPORTER');
  if (exporter !== undefined) return exporter !== 'none';
  return (
    r.string('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined ||
    r.string('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined
  );
}

/** DSD_TENANT_HEADER: a header name (e.g. `x-tenant-id`), lower-cased as Node delivers it. */
function readTenantHeader(r: EnvReader): string | undefined {
  const name = r.string('DSD_TENANT_HEADER');
  if (name === undefined) return undefined;
  if (!/^[A-Za-z0-9-]+$/.test(name)) r.problems.push(`DSD_TENANT_HEADER: ${JSON.stringify(name)} is not a header name`);
  return name.toLowerCase();
}

/** DSD_MODEL_ALIASES: `name=target` pairs (or bare names), comma-separated. */
function readAliases(r: EnvReader): string[] {
  const aliases: string[] = [];
  for (const part of (r.string('DSD_MODEL_ALIASES') ?? '').split(',')) {
    const [name = '', role = 'target', ...rest] = part.split('=').map((s) => s.trim());
    if (name === '' && part.trim() === '') continue;
    if (name === '' || role !== 'target' || rest.length > 0)
      r.problems.push(`DSD_MODEL_ALIASES: ${JSON.stringify(part.trim())} is not NAME=target (dsd serves one model)`);
    else aliases.push(name);
  }
  return aliases;
}

/** Reads a file named by a variable; injectable so loadConfig stays pure in tests. */
export type FileReader = (path: string) => string;

export function readNamedFile(r: EnvReader, name: string, readFile: FileReader): string | undefined {
  const path = r.string(name);
  if (path === undefined) return undefined;
  try {
    return readFile(path);
  } catch (err) {
    r.problems.push(
      `${name}=${JSON.stringify(path)}: cannot read the file ` +
        `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
    return undefined;
  }
}

/** DSD_KEY_LIMITS: `rpm=N,tpm=N,concurrency=N`, any of them. */
function readKeyLimits(r: EnvReader): KeyLimitsConfig | undefined {
  const raw = r.string('DSD_KEY_LIMITS');
  if (raw === undefined) return undefined;
  const names = { rpm: 'requestsPerMinute', tpm: 'tokensPerMinute', concurrency: 'concurrency' } as const;
  const out: KeyLimitsConfig = {};
  for (const part of raw.split(',').map((p) => p.trim())) {
    const [name, value] = part.split('=').map((s) => s.trim());
    const field = names[name as keyof typeof names];
    const n = Number(value);
    if (field === undefined || !/^\d+$/.test(value ?? '') || n < 1)
      r.problems.push(`DSD_KEY_LIMITS: ${JSON.stringify(part)} is not rpm=N, tpm=N or concurrency=N (N ≥ 1)`);
    else out[field] = n;
  }
  return out;
}

/** A certificate and its key from two PEM-file variables, which go together: both or neither. */
function readPemPair(
  r: EnvReader,
  names: { cert: string; key: string },
  readFile: FileReader,
): { cert: string | undefined; key: string | undefined } {
  const cert = readNamedFile(r, names.cert, readFile);
  const key = readNamedFile(r, names.key, readFile);
  if ((r.string(names.cert) === undefined) !== (r.string(names.key) === undefined))
    r.problems.push(`${names.cert} and ${names.key} go together: set both (PEM files) or neither`);
  return { cert, key };
}

/** DSD_TLS_CERT and DSD_TLS_KEY: both PEM files, or neither. */
export function readTls(r: EnvReader, readFile: FileReader): TlsFiles | undefined {
  const { cert, key } = readPemPair(r, { cert: 'DSD_TLS_CERT', key: 'DSD_TLS_KEY' }, readFile);
  const clientCa = readNamedFile(r, 'DSD_TLS_CLIENT_CA', readFile);
  if (clientCa !== undefined && cert === undefined)
    r.problems.push('DSD_TLS_CLIENT_CA needs DSD_TLS_CERT and DSD_TLS_KEY: client certificates need TLS');
  if (cert === undefined || key === undefined) return undefined;
  return clientCa === undefined ? { cert, key } : { cert, key, clientCa };
}

/** DSD_CLIENT_CERT and DSD_CLIENT_KEY: the certificate dsd presents to upstreams (mutual TLS). */
function readClientCertificate(r: EnvReader, readFile: FileReader): { cert: string; key: string } | undefined {
  const { cert, key } = readPemPair(r, { cert: 'DSD_CLIENT_CERT', key: 'DSD_CLIENT_KEY' }, readFile);
  return cert === undefined || key === undefined ? undefined : { cert, key };
}

/**
 * Reads and validates the `DSD_*` variables of `env` (pure: pass `process.env` or a literal; files
 * named by variables are read through `readFile`). Throws a ConfigError listing every invalid one.
 */
export function loadConfig(
  env: Env,
  overrides: DsdOptions = {},
  readFile: FileReader = (path) => readFileSync(path, 'utf8'),
): DsdConfig {
  const r = new EnvReader(env);
  const keyFile = readNamedFile(r, 'DSD_API_KEY_FILE', readFile);
  const fileKeys = (keyFile ?? '')
    .split(/\r?\n/)
    .map((k) => k.trim())
    .filter((k) => k !== '' && !k.startsWith('#'));
  const portDefault = r.int('PORT', 8080, 0, 65_535);
  const speculation = {
    window: readWindow(r),
    windowMin: r.int('DSD_WINDOW_MIN', 1, 0, 64),
    windowMax: r.int('DSD_WINDOW_MAX', 16, 1, 64),
    acceptance: r.oneOf('DSD_ACCEPTANCE', ACCEPTANCE, 'sample-match'),
    topLogprobs: r.int('DSD_TOP_LOGPROBS', 20, 1, 1024),
    draftAhead: r.oneOf('DSD_DRAFT_AHEAD', ['on', 'off'] as const, 'on') === 'on',
    aheadDepth: readAheadDepth(r),
    draftCooldownMs: r.int('DSD_DRAFT_COOLDOWN_MS', 5_000, 1, DAY_MS),
    verifierMode: r.oneOf('DSD_VERIFIER_MODE', ['auto', 'stream', 'rounds'] as const, 'auto'),
    treeBranches: r.int('DSD_TREE_BRANCHES', 2, 0, 8),
  };
  const window = speculation.window === -1 ? ('auto' as const) : speculation.window;
  const readDraft = readUpstream(r, 'DRAFT', {
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
  });
  // DSD_DRAFT_MODEL naming a .gguf file is the embedded draft, not a model name for a draft server.
  const draftUpstream = isGgufFile(readDraft.model) ? { ...readDraft, model: undefined } : readDraft;
  const config: DsdConfig = {
    target: readUpstream(r, 'TARGET', { connectTimeoutMs: 5_000, headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000 }),
    draft: draftUpstream,
    embeddedDraft: readEmbeddedDraft(r, readDraft.model),
    models: {
      servedName: r.string('DSD_SERVED_MODEL_NAME'),
      aliases: readAliases(r),
      acceptAny: r.oneOf('DSD_ACCEPT_ANY_MODEL', ['true', 'false'] as const, 'false') === 'true',
    },
    host: r.string('DSD_HOST') ?? '127.0.0.1',
    port: r.int('DSD_PORT', portDefault, 0, 65_535),
    apiKeys: [
      ...(r.string('DSD_API_KEY') ?? '')
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
      ...fileKeys,
    ],
    keyLimits: readKeyLimits(r),
    cacheScope: r.oneOf('DSD_CACHE_SCOPE', ['tenant', 'strict', 'global'] as const, 'tenant'),
    tenantHeader: readTenantHeader(r),
    logLevel: r.oneOf('DSD_LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes: r.int('DSD_BODY_LIMIT_BYTES', 8 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    speculation: { ...speculation, window },
    limits: {
      maxTokens: r.int('DSD_MAX_TOKENS', 32_768, 1, 10_000_000),
      maxMessages: r.int('DSD_MAX_MESSAGES', 1_024, 1, 1_000_000),
      maxConcurrency: r.int('DSD_MAX_CONCURRENCY', 256, 1, 1_000_000),
      maxQueue: r.int('DSD_MAX_QUEUE', 1_024, 0, 1_000_000),
      queueTimeoutMs: r.int('DSD_QUEUE_TIMEOUT_MS', 30_000, 1, DAY_MS),
    },
    caCertificates: readNamedFile(r, 'DSD_CA_FILE', readFile),
    tls: readTls(r, readFile),
    clientCertificate: readClientCertificate(r, readFile),
    logPrompts: r.oneOf('DSD_LOG_PROMPTS', ['true', 'false'] as const, 'false') === 'true',
    shutdownGraceMs: r.int('DSD_SHUTDOWN_GRACE_MS', 30_000, 0, DAY_MS),
    targetRetryAttempts: r.int('DSD_TARGET_RETRY_ATTEMPTS', 3, 1, 10),
    targetFailover: r.oneOf('DSD_TARGET_FAILOVER', ['on', 'off'] as const, 'on') === 'on',
    promptCacheEntries: r.int('DSD_PROMPT_CACHE_ENTRIES', 4_096, 0, 10_000_000),
    draftSlotPinning: r.oneOf('DSD_DRAFT_SLOT_PINNING', ['on', 'off'] as const, 'on') === 'on',
    targetSlotSharing: r.oneOf('DSD_TARGET_SLOT_SHARING', ['on', 'off'] as const, 'on') === 'on',
    traceFile: r.string('DSD_TRACE_FILE'),
    otelTraces: readOtelTraces(r),
    workers: r.int('DSD_WORKERS', availableParallelism(), 1, 256),
    upstreamConnections: r.int('DSD_UPSTREAM_CONNECTIONS', 256, 1, 100_000),
  };
  const merged = applyOverrides(config, overrides);
  checkConsistency(merged, r.problems);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return merged;
}

function applyOverrides(config: DsdConfig, o: DsdOptions): DsdConfig {
  const upstream = (base: UpstreamConfig, over: DsdOptions['target']): UpstreamConfig => ({
    ...base,
    ...stripUndefined({
      urls: over?.urls?.map((u) => normalizeUrl(u) ?? u),
      kind: over?.kind,
      model: over?.model,
      apiKey: over?.apiKey,
    }),
    timeouts: { ...base.timeouts, ...stripUndefined(over?.timeouts ?? {}) },
  });
  return {
    ...config,
    ...stripUndefined({
      host: o.host,
      port: o.port,
      apiKeys: o.apiKeys,
      cacheScope: o.cacheScope,
      tenantHeader: o.tenantHeader,
      logLevel: o.logLevel,
      bodyLimitBytes: o.bodyLimitBytes,
      logPrompts: o.logPrompts,
      shutdownGraceMs: o.shutdownGraceMs,
      targetRetryAttempts: o.targetRetryAttempts,
      targetFailover: o.targetFailover,
      promptCacheEntries: o.promptCacheEntries,
      draftSlotPinning: o.draftSlotPinning,
      targetSlotSharing: o.targetSlotSharing,
      traceFile: o.traceFile,
      upstreamConnections: o.upstreamConnections,
    }),
    models: { ...config.models, ...stripUndefined(o.models ?? {}) },
    limits: { ...config.limits, ...stripUndefined(o.limits ?? {}) },
    target: upstream(config.target, o.target),
    draft: upstream(config.draft, o.draft),
    speculation: { ...config.speculation, ...stripUndefined(o.speculation ?? {}) },
  };
}

function checkConsistency(c: DsdConfig, problems: string[]): void {
  const s = c.speculation;
  if (s.windowMin > s.windowMax)
    problems.push(`DSD_WINDOW_MIN (${s.windowMin}) is above DSD_WINDOW_MAX (${s.windowMax})`);
  for (const url of [...c.target.urls, ...c.draft.urls]) {
    if (normalizeUrl(url) === undefined) problems.push(`${JSON.stringify(url)} is not an http(s) URL`);
  }
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

/**
 * Reads the configuration from this process's environment (the only reader of process.env).
 * `flagEnv` holds command-line flags as the variables they stand for; they win over the
 * environment and are validated with it.
 */
export function loadConfigFromProcess(overrides: DsdOptions = {}, flagEnv: Env = {}): DsdConfig {
  return loadConfig({ ...process.env, ...flagEnv }, overrides);
}
