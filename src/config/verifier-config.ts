import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type Env, EnvReader, type FileReader, readTls } from './load-config.js';
import type { LogLevel, TlsFiles } from './types.js';

/** The validated configuration of a `dsd verifier`. */
export interface VerifierConfig {
  /** GGUF file of the target model, loaded in-process (or empty when `targetUrl` is set). */
  modelPath: string;
  /** A target server on loopback (llama-server or vLLM) to verify with instead of a GGUF file. */
  targetUrl: string | undefined;
  host: string;
  port: number;
  /** CPU threads for the target's evaluations. */
  threads: number;
  /** Context tokens per sequence; undefined: the model's trained context. */
  contextTokens: number | undefined;
  /** Concurrent generations held in KV (one context sequence each). */
  sequences: number;
  /** Keys accepted from edges and clients (Bearer); empty: none required. */
  keys: string[];
  maxSessionsPerConnection: number;
  /** How long SIGTERM lets open generations finish before the verifier stops (edges fail them over). */
  drainMs: number;
  idleTimeoutMs: number;
  maxFrameBytes: number;
  /** Most draft tokens one round may carry. */
  maxDraftTokens: number;
  logLevel: LogLevel;
  /** The verifier's listener (and so its link, as wss) over HTTPS: DSD_TLS_CERT, DSD_TLS_KEY. */
  tls: TlsFiles | undefined;
  /** Which in-process engine: dsd's native one when built (`auto`), it alone, or node-llama-cpp. */
  engine: EngineSetting;
  /** Where the target runs: `auto` takes a GPU when one is there, else the CPU. */
  gpu: GpuSetting;
  /** Layers offloaded to the GPU: `all` or a count (0 keeps the model on the CPU). */
  gpuLayers: number | 'all';
  /** Where native builds are cached (DSD_LLAMA_CACHE, default ~/.cache/dsd). */
  cacheDir: string;
}

/** DSD_VERIFIER_ENGINE. */
export type EngineSetting = 'auto' | 'native' | 'node-llama-cpp';
/** DSD_VERIFIER_GPU (--gpu). */
export type GpuSetting = 'auto' | 'cuda' | 'vulkan' | 'cpu';

const ENGINES = ['auto', 'native', 'node-llama-cpp'] as const satisfies readonly EngineSetting[];
const GPUS = ['auto', 'cuda', 'vulkan', 'cpu'] as const satisfies readonly GpuSetting[];

function readGpuLayers(r: EnvReader): number | 'all' {
  const raw = r.string('DSD_VERIFIER_GPU_LAYERS');
  if (raw === undefined || raw === 'all') return 'all';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 100_000) {
    r.problems.push(`DSD_VERIFIER_GPU_LAYERS=${JSON.stringify(raw)}: expected all or an integer from 0 to 100000`);
    return 'all';
  }
  return n;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const satisfies readonly LogLevel[];

/**
 * Reads the `DSD_VERIFIER_*` variables (and `DSD_API_KEY`, `DSD_LOG_LEVEL`); `overrides` are
 * CLI flags, which win. Throws a ConfigError listing every invalid value.
 */
export function loadVerifierConfig(
  env: Env,
  overrides: Partial<VerifierConfig> = {},
  readFile: FileReader = (path) => readFileSync(path, 'utf8'),
): VerifierConfig {
  const r = new EnvReader(env);
  const modelPath = overrides.modelPath ?? r.string('DSD_VERIFIER_MODEL');
  const context = r.int('DSD_VERIFIER_CONTEXT', 0, 0, 1_048_576);
  const config: VerifierConfig = {
    modelPath: modelPath ?? '',
    targetUrl: r.string('DSD_VERIFIER_TARGET_URL'),
    host: r.string('DSD_VERIFIER_HOST') ?? '127.0.0.1',
    port: r.int('DSD_VERIFIER_PORT', 8090, 0, 65_535),
    threads: r.int('DSD_VERIFIER_THREADS', 1, 1, 1024),
    contextTokens: context === 0 ? undefined : context,
    sequences: r.int('DSD_VERIFIER_SEQUENCES', 8, 1, 1024),
    keys: (r.string('DSD_API_KEY') ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
    maxSessionsPerConnection: r.int('DSD_VERIFIER_MAX_SESSIONS', 256, 1, 100_000),
    idleTimeoutMs: r.int('DSD_VERIFIER_IDLE_TIMEOUT_MS', 60_000, 10, 86_400_000),
    drainMs: r.int('DSD_VERIFIER_DRAIN_MS', 20_000, 0, 3_600_000),
    maxFrameBytes: r.int('DSD_VERIFIER_MAX_FRAME_BYTES', 1_048_576, 1024, 1 << 30),
    maxDraftTokens: r.int('DSD_VERIFIER_MAX_DRAFT_TOKENS', 64, 1, 1024),
    logLevel: r.oneOf('DSD_LOG_LEVEL', LOG_LEVELS, 'info'),
    tls: readTls(r, readFile),
    engine: r.oneOf('DSD_VERIFIER_ENGINE', ENGINES, 'auto'),
    gpu: r.oneOf('DSD_VERIFIER_GPU', GPUS, 'auto'),
    gpuLayers: readGpuLayers(r),
    cacheDir: r.string('DSD_LLAMA_CACHE') ?? join(env.HOME ?? homedir(), '.cache', 'dsd'),
  };
  const merged = { ...config, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  if (merged.modelPath === '' && merged.targetUrl === undefined)
    r.problems.push(
      'DSD_VERIFIER_MODEL (--model) must name the target GGUF file, or DSD_VERIFIER_TARGET_URL ' +
        '(--target-url) a target server beside the verifier',
    );
  if (merged.modelPath !== '' && merged.targetUrl !== undefined)
    r.problems.push('set DSD_VERIFIER_MODEL or DSD_VERIFIER_TARGET_URL, not both');
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return merged;
}
