import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { locateLlamaServer } from '../src/bench/llama-process.js';
import { buildNativeEngine } from '../src/bench/verifier-process.js';
import { hfModel, locateVllm } from '../src/bench/vllm-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Where the shared GGUF models are (DSD_TEST_MODELS overrides ../shared/models). */
export function modelsDir(): string {
  return process.env.DSD_TEST_MODELS ?? resolve(root, '../shared/models');
}

/**
 * Locates or builds llama-server once for the whole run (cached between runs by the script).
 * Tests that need it read the result with inject('llamaServer') and skip with its reason.
 */
export default async function setup(project: TestProject): Promise<void> {
  const models = modelsDir();
  if (!existsSync(resolve(models, 'stories260K-f32.gguf'))) {
    const reason = `no test models at ${models} (set DSD_TEST_MODELS)`;
    project.provide('llamaServer', { bin: null, models, reason });
    project.provide('vllm', { bin: null, model: null, reason });
    project.provide('nativeEngine', { dir: null, reason });
    return;
  }
  const started = Date.now();
  // Straight to the terminal: vitest would hold console output of a global setup until it ends.
  const result = await locateLlamaServer((line) => process.stderr.write(`${line}\n`)).then(
    (bin) => ({ bin, reason: '' }),
    (err: Error) => ({ bin: null, reason: err.message }),
  );
  if (result.bin !== null && Date.now() - started > 5_000)
    console.log(`built llama-server in ${Math.round((Date.now() - started) / 1000)} s: ${result.bin}`);
  project.provide('llamaServer', { bin: result.bin, models, reason: result.reason });
  project.provide('nativeEngine', await provideNativeEngine(result.bin !== null));
  project.provide('vllm', await provideVllm(models));
}

/**
 * Compiles the native verifier engine's shim against the llama-server build (seconds, cached), so
 * every in-process verifier in the tests runs on it; without it they run node-llama-cpp.
 */
async function provideNativeEngine(haveLlamaServer: boolean): Promise<{ dir: string | null; reason: string }> {
  if (!haveLlamaServer) return { dir: null, reason: 'llama-server (whose libllama it links to) was not built' };
  return buildNativeEngine(['cpu'], (line) => process.stderr.write(`${line}\n`)).then(
    (dir) => ({ dir, reason: '' }),
    (err: Error) => ({ dir: null, reason: `the native engine could not be built: ${err.message}` }),
  );
}

/**
 * Installs vLLM's CPU build once (cached) and converts the small target for it. Tests that need
 * it read inject('vllm') and skip with its reason (no Python 3.11, no registry, DSD_SKIP_VLLM=1).
 */
async function provideVllm(models: string): Promise<VllmInfo> {
  if (process.env.DSD_SKIP_VLLM === '1') return { bin: null, model: null, reason: 'DSD_SKIP_VLLM=1' };
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const bin = await locateVllm(log);
    const model = await hfModel(resolve(models, 'stories260K-f32.gguf'), log);
    return { bin, model, reason: '' };
  } catch (err) {
    return { bin: null, model: null, reason: (err as Error).message };
  }
}

/** What the vLLM tests get from the global setup. */
export interface VllmInfo {
  bin: string | null;
  /** The small f32 target as a Hugging Face folder. */
  model: string | null;
  reason: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    llamaServer: { bin: string | null; models: string; reason: string };
    vllm: VllmInfo;
    /** The native verifier engine's folder (scripts/build-native-engine.sh cpu), or why not. */
    nativeEngine: { dir: string | null; reason: string };
  }
}
