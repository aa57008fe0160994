import { inject } from 'vitest';
import { startVllm as start, type VllmProcess, type VllmProcessOptions } from '../../src/bench/vllm-process.js';

export type { VllmProcess } from '../../src/bench/vllm-process.js';

/** Why real-vLLM tests must skip here, or undefined when they can run. */
export function vllmSkipReason(): string | undefined {
  const info = inject('vllm');
  return info.bin === null || info.model === null ? `no vLLM: ${info.reason}` : undefined;
}

/** Starts vLLM serving the small f32 target (converted by the global setup) as `servedName`. */
export function startTestVllm(
  o: Omit<VllmProcessOptions, 'binDir' | 'modelDir'> & { modelDir?: string },
): Promise<VllmProcess> {
  const info = inject('vllm');
  if (info.bin === null || info.model === null) throw new Error(vllmSkipReason());
  return start({ ...o, binDir: info.bin, modelDir: o.modelDir ?? info.model });
}
