import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';

/** The shim interface this code speaks (`DSD_EVAL_ABI` in native/dsd-eval.c). */
export const NATIVE_ABI = 1;
/** The llama.cpp commit node-llama-cpp 3.21.1 bundles: the headers every layout was compiled from. */
export const PINNED_LLAMA_COMMIT = '80fb11ac73e66d89eae2c6a91d8a77428fa733ed';

/** Which libllama a shim was linked to (scripts/build-native-engine.sh). */
export type NativeVariant = 'cpu' | 'cpu-prebuilt' | 'cuda' | 'vulkan';

/** What the build script wrote beside a shim. */
export interface NativeManifest {
  abi: number;
  variant: NativeVariant;
  llamaCommit: string;
  library: string;
  librarySha256: string;
  backendDir: string;
}

/** An opaque dsd_engine pointer. */
export type EngineHandle = unknown;

/** The shim's functions, typed. Pointer arguments take typed arrays, which koffi passes in place. */
export interface NativeApi {
  readonly variant: NativeVariant;
  readonly manifest: NativeManifest;
  backendInit(backendDir: string, verbose: number): number;
  gpuDevices(): number;
  /** Loads the model and its context; throws with llama.cpp's reason when it cannot. */
  open(o: { path: string; ctxPerSeq: number; sequences: number; threads: number; gpuLayers: number }): EngineHandle;
  close(e: EngineHandle): void;
  lastError(e: EngineHandle): string;
  device(e: EngineHandle): string;
  nVocab(e: EngineHandle): number;
  nCtxSeq(e: EngineHandle): number;
  bos(e: EngineHandle): number;
  eos(e: EngineHandle): number;
  isEog(e: EngineHandle, token: number): number;
  tokenize(e: EngineHandle, text: string, addSpecial: boolean): number[];
  /** The bytes a token adds inside a text. */
  piece(e: EngineHandle, token: number): Uint8Array;
  detokenize(e: EngineHandle, tokens: readonly number[]): string;
  /** dsd_eval on koffi's worker thread: the event loop keeps running during the decode. */
  evalAsync(args: EvalArgs): Promise<number>;
}

/** The flat arrays of one dsd_eval call (see native/dsd-eval.c). */
export interface EvalArgs {
  engine: EngineHandle;
  jobs: number;
  seq: Int32Array;
  keep: Int32Array;
  tokenCounts: Int32Array;
  outputCounts: Int32Array;
  temperature: Float32Array;
  topK: Int32Array;
  topP: Float32Array;
  minP: Float32Array;
  seed: Uint32Array;
  tokens: Int32Array;
  wantLogprobs: number;
  topN: number;
  outIds: Int32Array;
  outLogprob: Float32Array;
  topIds: Int32Array;
  topLogprob: Float32Array;
}

/** The shim's folder for a variant under the cache (DSD_LLAMA_CACHE or ~/.cache/dsd). */
export function nativeEngineDir(cacheDir: string, variant: NativeVariant): string {
  return join(cacheDir, 'native-engine-3.21.1', variant);
}

/** Why a variant cannot be used, or undefined when its shim and library are there and match. */
export function checkManifest(dir: string): { manifest: NativeManifest } | { reason: string } {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file) || !existsSync(join(dir, 'libdsd-eval.so')))
    return { reason: `no native engine at ${dir} (npm run build:engine builds it)` };
  let m: NativeManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as NativeManifest;
  } catch (err) {
    return { reason: `${file} is not valid JSON: ${(err as Error).message}` };
  }
  if (m.abi !== NATIVE_ABI)
    return { reason: `the shim at ${dir} speaks ABI ${m.abi}, this dsd ${NATIVE_ABI}: rebuild it` };
  if (m.llamaCommit !== PINNED_LLAMA_COMMIT)
    return { reason: `the shim at ${dir} was compiled against llama.cpp ${m.llamaCommit}, not ${PINNED_LLAMA_COMMIT}` };
  if (!existsSync(m.library)) return { reason: `the library the shim was linked to is gone: ${m.library}` };
  // The layouts were checked by the compiler against this exact file; a swapped library is refused.
  const sha = createHash('sha256').update(readFileSync(m.library)).digest('hex');
  if (sha !== m.librarySha256) return { reason: `${m.library} changed since the shim was built: rebuild it` };
  return { manifest: m };
}

/** Loads a checked shim; throws with the reason when it cannot. */
export function loadNativeApi(dir: string): NativeApi {
  const checked = checkManifest(dir);
  if ('reason' in checked) throw new Error(checked.reason);
  const { manifest } = checked;
  const lib = koffi.load(join(dir, 'libdsd-eval.so'));
  const abi = lib.func('int32_t dsd_eval_abi(void)')() as number;
  if (abi !== NATIVE_ABI) throw new Error(`the shim at ${dir} reports ABI ${abi}, this dsd speaks ${NATIVE_ABI}`);
  const commit = lib.func('const char *dsd_eval_llama_commit(void)')() as string;
  if (commit !== PINNED_LLAMA_COMMIT) throw new Error(`the shim at ${dir} was compiled against llama.cpp ${commit}`);
  const fn = (proto: string) => lib.func(proto) as (...args: unknown[]) => unknown;
  const evalFn = lib.func(
    'int32_t dsd_eval(void *e, int32_t n_jobs, const int32_t *seq, const int32_t *keep, const int32_t *n_tok, ' +
      'const int32_t *n_out, const float *temp, const int32_t *top_k, const float *top_p, const float *min_p, ' +
      'const uint32_t *seed, const int32_t *tokens, int32_t want_lp, int32_t top_n, _Out_ int32_t *out_ids, ' +
      '_Out_ float *out_lp, _Out_ int32_t *top_ids, _Out_ float *top_lp)',
  );
  const i32 = (proto: string) => fn(proto) as (e: EngineHandle, ...rest: unknown[]) => number;
  const str = (proto: string) => fn(proto) as (e: EngineHandle) => string;
  const openFn = fn(
    'void *dsd_open(const char *path, int32_t n_ctx_seq, int32_t n_seq, int32_t n_threads, int32_t n_gpu_layers, ' +
      '_Out_ char *err, int32_t err_len)',
  );
  const tokenizeFn = i32(
    'int32_t dsd_tokenize(void *e, const char *text, int32_t len, int32_t add_special, ' +
      '_Out_ int32_t *out, int32_t max)',
  );
  const pieceFn = i32('int32_t dsd_piece(void *e, int32_t token, _Out_ char *buf, int32_t len)');
  const detokenizeFn = i32(
    'int32_t dsd_detokenize(void *e, const int32_t *tokens, int32_t n, _Out_ char *buf, int32_t len)',
  );
  return {
    variant: manifest.variant,
    manifest,
    backendInit: fn('int32_t dsd_backend_init(const char *dir, int32_t verbose)') as NativeApi['backendInit'],
    gpuDevices: fn('int32_t dsd_gpu_devices(void)') as NativeApi['gpuDevices'],
    open: (o) => {
      const err = Buffer.alloc(512);
      const e = openFn(o.path, o.ctxPerSeq, o.sequences, o.threads, o.gpuLayers, err, err.length);
      if (e === null) throw new Error(cString(err) || `llama.cpp could not load ${o.path}`);
      return e;
    },
    close: fn('void dsd_close(void *e)') as NativeApi['close'],
    lastError: str('const char *dsd_last_error(void *e)'),
    device: str('const char *dsd_device(void *e)'),
    nVocab: i32('int32_t dsd_n_vocab(void *e)'),
    nCtxSeq: i32('int32_t dsd_n_ctx_seq(void *e)'),
    bos: i32('int32_t dsd_bos(void *e)'),
    eos: i32('int32_t dsd_eos(void *e)'),
    isEog: i32('int32_t dsd_is_eog(void *e, int32_t token)'),
    tokenize: (e, text, addSpecial) => {
      const bytes = Buffer.from(text, 'utf8');
      // A negative count is minus the room needed: at most one retry.
      let out = new Int32Array(bytes.length + 8);
      let n = tokenizeFn(e, bytes, bytes.length, addSpecial ? 1 : 0, out, out.length);
      if (n < 0) {
        out = new Int32Array(-n);
        n = tokenizeFn(e, bytes, bytes.length, addSpecial ? 1 : 0, out, out.length);
      }
      return Array.from(out.subarray(0, Math.max(0, n)));
    },
    piece: (e, token) => {
      let buf = Buffer.alloc(64);
      let n = pieceFn(e, token, buf, buf.length);
      if (n < 0) {
        buf = Buffer.alloc(-n);
        n = pieceFn(e, token, buf, buf.length);
      }
      return new Uint8Array(buf.subarray(0, Math.max(0, n)));
    },
    detokenize: (e, tokens) => {
      const ids = Int32Array.from(tokens);
      let buf = Buffer.alloc(tokens.length * 8 + 16);
      let n = detokenizeFn(e, ids, ids.length, buf, buf.length);
      if (n < 0) {
        buf = Buffer.alloc(-n);
        n = detokenizeFn(e, ids, ids.length, buf, buf.length);
      }
      return buf.subarray(0, Math.max(0, n)).toString('utf8');
    },
    evalAsync: (a) =>
      new Promise<number>((resolve, reject) => {
        evalFn.async(
          a.engine,
          a.jobs,
          a.seq,
          a.keep,
          a.tokenCounts,
          a.outputCounts,
          a.temperature,
          a.topK,
          a.topP,
          a.minP,
          a.seed,
          a.tokens,
          a.wantLogprobs,
          a.topN,
          a.outIds,
          a.outLogprob,
          a.topIds,
          a.topLogprob,
          (err: Error | null, rc: number) => (err ? reject(err) : resolve(rc)),
        );
      }),
  };
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}
