import type { ChatMessage, OpenAiRoute } from '../backends/types.js';

/** What the client asked to generate from. */
export type PromptInput =
  | { kind: 'messages'; messages: ChatMessage[] }
  | { kind: 'text'; text: string }
  | { kind: 'ids'; ids: number[] };

/** Per-request speculation controls (body `dsd` extension or `x-dsd-*` headers). */
export interface SpeculationControl {
  enabled?: boolean;
  window?: number;
}

/** A validated OpenAI chat or completions request. */
export interface GenerationRequest {
  route: OpenAiRoute;
  model: string;
  input: PromptInput;
  /** Undefined: until the context is full. */
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed: number | undefined;
  stop: string[];
  stopTokenIds: number[];
  stream: boolean;
  includeUsage: boolean;
  /** Top log-probabilities the client wants per token; undefined when logprobs are off. */
  logprobs: number | undefined;
  /**
   * Why the speculative engine cannot serve this request exactly (it goes to the target
   * unchanged), or undefined when it can.
   */
  passthroughReason: string | undefined;
  speculation: SpeculationControl;
  /** The client's body minus dsd's extension (and any `cache_salt`: dsd sets it), for passthrough. */
  upstreamBody: Record<string, unknown>;
  /** Whose caches this request may use: '' for global, else the tenant's digest (http/tenant.ts). */
  cacheScope: string;
}
