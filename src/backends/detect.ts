import type { BackendKind, BackendKindSetting, TimeoutConfig } from '../config/types.js';
import { DsdError, type UpstreamRole } from '../errors.js';
import { HttpUpstream, type HttpUpstreamOptions } from './http.js';
import type { LinkEncoding } from './link/link-codec.js';
import { LlamaCppServer } from './llamacpp/client.js';
import type { ModelServer } from './types.js';
import { VerifierServer } from './verifier/client.js';
import { VllmServer } from './vllm/client.js';

/** Everything needed to connect to one upstream server. */
export interface ConnectOptions {
  url: string;
  role: UpstreamRole;
  kind: BackendKindSetting;
  model?: string | undefined;
  apiKey?: string | undefined;
  timeouts: TimeoutConfig;
  /** What a verifier target's link is encoded as (binary unless set; JSON where the verifier is older). */
  linkEncoding?: LinkEncoding | undefined;
  /** CA certificates, request observation and retries for this upstream's HTTP pool. */
  http?:
    | (Pick<HttpUpstreamOptions, 'ca' | 'clientCert' | 'observe' | 'retry' | 'connections'> & {
        connect?: Connector | undefined;
      })
    | undefined;
}

/** Makes the server object for an upstream; injectable so a process can serve an in-process engine. */
export type Connector = (options: ConnectOptions, signal: AbortSignal) => Promise<ModelServer>;

/**
 * Decides which API a server speaks: llama-server answers `/props` with `total_slots`; a dsd
 * verifier answers `/dsd/verifier`; vLLM's `/v1/models` entries carry `max_model_len`. A clear
 * error when none does.
 */
export async function detectKind(options: ConnectOptions, signal: AbortSignal): Promise<BackendKind> {
  const http = new HttpUpstream({
    baseUrl: options.url,
    role: options.role,
    apiKey: options.apiKey,
    timeouts: options.timeouts,
    connections: 2,
    ca: options.http?.ca,
    clientCert: options.http?.clientCert,
  });
  try {
    const props = await http.json('GET', '/props', undefined, signal).catch(() => undefined);
    if (typeof props === 'object' && props !== null && 'total_slots' in props) return 'llamacpp';
    const verifier = await http.json('GET', '/dsd/verifier', undefined, signal).catch(() => undefined);
    if (typeof verifier === 'object' && verifier !== null && 'version' in verifier) return 'verifier';
    const models = await http.json('GET', '/v1/models', undefined, signal).catch((err: unknown) => err);
    if (models instanceof Error) {
      throw new DsdError(
        'upstream_unavailable',
        `cannot detect the ${options.role} server at ${options.url}: ${models.message}`,
      );
    }
    const data = (models as { data?: { max_model_len?: unknown; owned_by?: unknown }[] }).data;
    if (data?.some((m) => m.owned_by === 'llamacpp')) return 'llamacpp';
    if (data?.some((m) => typeof m.max_model_len === 'number' || m.owned_by === 'vllm')) return 'vllm';
    throw new DsdError(
      'upstream_bad_response',
      `the ${options.role} server at ${options.url} speaks neither the llama.cpp nor the vLLM API; set ` +
        `DSD_${options.role.toUpperCase()}_KIND`,
    );
  } finally {
    await http.close();
  }
}

/** Connects to a server of a known kind (no network traffic). */
export function createServer(options: ConnectOptions & { kind: BackendKind }): ModelServer {
  const http = {
    ...options.http,
    baseUrl: options.url,
    role: options.role,
    apiKey: options.apiKey,
    timeouts: options.timeouts,
  };
  switch (options.kind) {
    case 'llamacpp':
      return new LlamaCppServer(http);
    case 'vllm':
      return new VllmServer({ ...http, model: options.model });
    case 'verifier':
      return new VerifierServer(http, { encoding: options.linkEncoding });
  }
}

/** Detects the kind when set to auto, then connects. */
export async function connectServer(options: ConnectOptions, signal: AbortSignal): Promise<ModelServer> {
  const kind = options.kind === 'auto' ? await detectKind(options, signal) : options.kind;
  return createServer({ ...options, kind });
}
