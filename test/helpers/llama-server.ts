import { resolve } from 'node:path';
import { inject } from 'vitest';
import {
  type LlamaProcess,
  type LlamaProcessOptions,
  startLlamaServer as start,
} from '../../src/bench/llama-process.js';

export { freePort, type LlamaProcess } from '../../src/bench/llama-process.js';

/** Why real-server tests must skip here, or undefined when they can run. */
export function llamaSkipReason(): string | undefined {
  const info = inject('llamaServer');
  return info.bin === null ? info.reason : undefined;
}

/** Path of a shared test model. */
export function modelPath(file: string): string {
  return resolve(inject('llamaServer').models, file);
}

/** Starts llama-server with a shared test model (by file name). */
export async function startLlamaServer(
  o: Omit<LlamaProcessOptions, 'bin' | 'modelPath'> & { model: string },
): Promise<LlamaProcess> {
  const bin = inject('llamaServer').bin;
  if (bin === null) throw new Error(llamaSkipReason());
  const { model, ...rest } = o;
  return start({ ...rest, bin, modelPath: modelPath(model) });
}
