import { existsSync, readdirSync } from 'node:fs';
import type { EngineSetting, GpuSetting, VerifierConfig } from '../config/verifier-config.js';
import { DsdError } from '../errors.js';
import type { Logger } from '../logger.js';
import { loadLlamaEngine } from './llama-engine.js';
import { openNativeEngine } from './native/native-engine.js';
import { checkManifest, loadNativeApi, type NativeVariant, nativeEngineDir } from './native/native-library.js';
import type { TargetEngine } from './types.js';

/** Which engine a verifier runs, and on what. */
export type EnginePlan =
  | { kind: 'native'; variant: NativeVariant; gpuLayers: number; backend: 'cpu' | 'cuda' | 'vulkan' }
  | { kind: 'node-llama-cpp'; gpu: false | 'cuda' | 'vulkan' | 'auto'; gpuLayers: number | 'all'; why: string };

/** What the plan needs to know of this machine. */
export interface EngineProbe {
  /** Why a native variant cannot be used, or undefined when it is built and matches. */
  unavailable(variant: NativeVariant): string | undefined;
  /** Whether the machine has a device of that kind at all. */
  hasDevice(kind: 'cuda' | 'vulkan'): boolean;
}

/** The native variants to try for a --gpu setting, best first. */
function candidates(gpu: GpuSetting, probe: EngineProbe): NativeVariant[] {
  switch (gpu) {
    case 'cpu':
      return ['cpu', 'cpu-prebuilt'];
    case 'cuda':
      return ['cuda'];
    case 'vulkan':
      return ['vulkan'];
    case 'auto':
      return [
        ...(probe.hasDevice('cuda') ? (['cuda'] as const) : []),
        ...(probe.hasDevice('vulkan') ? (['vulkan'] as const) : []),
        'cpu',
        'cpu-prebuilt',
      ];
  }
}

const backendOf = (v: NativeVariant): 'cpu' | 'cuda' | 'vulkan' => (v === 'cuda' || v === 'vulkan' ? v : 'cpu');

/**
 * Chooses the engine: the first native variant that is built, matches and fits `gpu`; with
 * `engine: auto` node-llama-cpp when none does (it says why). An explicit GPU without its device,
 * or `engine: native` without a build, is an error that says what to do.
 */
export function planEngine(
  o: { engine: EngineSetting; gpu: GpuSetting; gpuLayers: number | 'all' },
  probe: EngineProbe,
): EnginePlan {
  if ((o.gpu === 'cuda' || o.gpu === 'vulkan') && !probe.hasDevice(o.gpu))
    throw new DsdError(
      'invalid_request',
      `--gpu ${o.gpu}: this machine has no ${o.gpu === 'cuda' ? 'NVIDIA' : 'Vulkan'} device`,
    );
  const fallbackGpu = o.gpu === 'cpu' ? false : o.gpu;
  if (o.engine === 'node-llama-cpp')
    return {
      kind: 'node-llama-cpp',
      gpu: fallbackGpu,
      gpuLayers: o.gpuLayers,
      why: 'DSD_VERIFIER_ENGINE=node-llama-cpp',
    };
  const reasons: string[] = [];
  for (const variant of candidates(o.gpu, probe)) {
    const why = probe.unavailable(variant);
    if (why !== undefined) {
      reasons.push(`${variant}: ${why}`);
      continue;
    }
    const backend = backendOf(variant);
    const gpuLayers = backend === 'cpu' ? 0 : o.gpuLayers === 'all' ? -1 : o.gpuLayers;
    return { kind: 'native', variant, gpuLayers, backend };
  }
  if (o.engine === 'native')
    throw new DsdError('invalid_request', `no native engine to run (${reasons.join('; ')}); run npm run build:engine`);
  return { kind: 'node-llama-cpp', gpu: fallbackGpu, gpuLayers: o.gpuLayers, why: reasons.join('; ') };
}

/** This machine: device files and the built shims under the cache. */
export function machineProbe(cacheDir: string): EngineProbe {
  return {
    unavailable: (variant) => {
      const checked = checkManifest(nativeEngineDir(cacheDir, variant));
      return 'reason' in checked ? checked.reason : undefined;
    },
    hasDevice: (kind) =>
      kind === 'cuda'
        ? existsSync('/dev/nvidiactl') || existsSync('/proc/driver/nvidia/version')
        : existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD')),
  };
}

/** What loading an in-process model needs: the verifier's settings, or the edge's embedded draft's. */
export type InProcessModel = Pick<
  VerifierConfig,
  'modelPath' | 'threads' | 'contextTokens' | 'sequences' | 'engine' | 'gpu' | 'gpuLayers' | 'cacheDir' | 'logLevel'
>;

/**
 * Loads an in-process model (the verifier's target, the edge's draft) as planned, and says which
 * engine runs on what.
 */
export async function loadTargetEngine(c: InProcessModel, logger: Logger): Promise<TargetEngine> {
  const plan = planEngine(c, machineProbe(c.cacheDir));
  if (plan.kind === 'node-llama-cpp') {
    logger.info('the verifier runs node-llama-cpp (the native engine is not in use)', { why: plan.why });
    return loadLlamaEngine({ ...engineModel(c), gpu: plan.gpu, gpuLayers: plan.gpuLayers });
  }
  const api = loadNativeApi(nativeEngineDir(c.cacheDir, plan.variant));
  api.backendInit(api.manifest.backendDir, c.logLevel === 'debug' ? 1 : 0);
  let { backend, gpuLayers } = plan;
  if (backend !== 'cpu' && api.gpuDevices() === 0) {
    if (c.gpu !== 'auto')
      throw new DsdError('invalid_request', `--gpu ${backend}: llama.cpp found no ${backend} device`);
    // Another variant's libraries must not join these in one process: stay, on this build's CPU backends.
    logger.warn('no GPU device answered; the target runs on the CPU backends of the GPU build', {
      variant: plan.variant,
    });
    backend = 'cpu';
    gpuLayers = 0;
  }
  return openNativeEngine(api, { ...engineModel(c), gpuLayers, backend });
}

function engineModel(c: InProcessModel) {
  return { modelPath: c.modelPath, threads: c.threads, contextTokens: c.contextTokens, sequences: c.sequences };
}
