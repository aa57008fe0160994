import type { ChatMessage } from '../backends/types.js';
import type { BatchCost } from '../speculative/batch-window.js';
import type { GeneratedToken, SamplingParams } from '../speculative/types.js';

/** What a target engine says about its model. */
export interface EngineInfo {
  modelName: string;
  contextTokens: number;
  bosId: number | undefined;
  eosId: number | undefined;
  vocabSize: number;
  /** Sequences (concurrent generations) the engine holds KV for. */
  sequences: number;
  /** Positions one evaluation may score (a llama-server behind the verifier: its slots). */
  maxPositions: number;
  /** Which binary evaluates: a `local` build of llama.cpp or a `prebuilt` one from npm, or an `http` server. */
  build: 'local' | 'prebuilt' | 'http';
  /** What drives it: dsd's own shim over libllama, node-llama-cpp's binding, or a server's HTTP API. */
  engine: 'native' | 'node-llama-cpp' | 'http';
  /** Where the target's layers run. */
  backend: 'cpu' | 'cuda' | 'vulkan' | 'metal' | 'http';
  /** The devices in use, as llama.cpp names them (or the server's URL). */
  device: string;
}

/** How the target picks its token at each scored position. */
export interface PositionSampling {
  sampling: SamplingParams;
  /** Top-N alternatives per position (0: none). */
  topN: number;
}

/**
 * One context sequence of the target: the tokens whose KV it holds, and one batched evaluation
 * that scores several positions at once. The last token of a context is never held (its logits
 * are what the next evaluation needs), which is how llama.cpp's own speculation keeps it too.
 */
export interface EngineSequence {
  /** Tokens in the KV cache, in order. */
  readonly held: readonly number[];
  /**
   * Keeps `held[0..from)`, erases the rest from the KV, evaluates `tokens` after it in one batch,
   * and returns the target's own next token after each of the last `positions` input tokens. An
   * engine that shapes its batches may evaluate fewer of the trailing tokens (drafts it found not
   * worth the shared batch, never the first scored position): it then returns fewer tokens, one per
   * position it scored, and holds only what it evaluated.
   */
  evaluate(from: number, tokens: readonly number[], positions: number, s: PositionSampling): Promise<GeneratedToken[]>;
  /** Gives the sequence back; its KV stays for the next generation that shares its prefix. */
  release(): void;
  /** Decoding alone in one streaming request, for an engine behind an HTTP API (else a loop of evaluations). */
  decode?(
    prompt: readonly number[],
    maxTokens: number,
    s: PositionSampling,
    signal: AbortSignal,
  ): AsyncIterable<GeneratedToken>;
}

/** How busy an engine's sequences are, and how much prompt its KV saved. */
export interface EngineLoad {
  busy: number;
  idle: number;
  waiting: number;
  reusedPrefixTokens: number;
  /** Evaluations run so far (engine calls; node-llama-cpp batches inside one, unseen here). */
  evaluations: number;
  /** Generation steps those evaluations served: over `evaluations`, the mean batch occupancy. */
  evaluatedSteps: number;
}

/** A target model loaded beside the verifier. */
export interface TargetEngine {
  readonly info: EngineInfo;
  tokenize(text: string, addSpecial: boolean): Promise<number[]>;
  detokenize(ids: readonly number[]): Promise<string>;
  /** The exact bytes a token adds to a text (a leading space included). */
  tokenBytes(id: number): Promise<Uint8Array>;
  /** A chat's prompt ids through the target's own template. */
  chatPromptIds(messages: readonly ChatMessage[]): Promise<number[]>;
  /** The template applied as text, when the target templates as text (prefix reuse of a conversation). */
  chatTemplate?(messages: readonly ChatMessage[]): Promise<{ text: string; addSpecial: boolean }>;
  /**
   * A sequence for a generation whose context starts with `prompt`: the idle sequence holding the
   * longest prefix of it (multi-turn reuse) within `scope` (a tenant: another scope's KV is never
   * reused, it is erased). Waits while all sequences are busy; rejects on abort.
   */
  acquire(prompt: readonly number[], signal: AbortSignal, scope?: string): Promise<EngineSequence>;
  /** Sequences in use, idle with KV, waiting acquirers, prefix reuse (for metrics). */
  load(): EngineLoad;
  /** What a batched step costs and how many generations share one, as measured so far. */
  batchCost(): BatchCost;
  close(): Promise<void>;
}
