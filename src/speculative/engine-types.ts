import type { AcceptanceRule } from './acceptance.js';
import type { EngineFinish } from './generation-state.js';
import type { SpeculationPlanner } from './planner.js';
import type { Rng } from './sampling.js';
import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

/** The draft model, as the engine needs it. */
export interface DraftPort {
  /**
   * Up to k tokens continuing ctx (fewer when the draft ends its text); with `alternatives`, each
   * token's top alternatives (at least that many) as the draft ranked them.
   */
  propose(ctx: readonly number[], k: number, signal: AbortSignal, alternatives?: number): Promise<GeneratedToken[]>;
  /** Every slot of the draft is drafting for some generation now: a call would wait in its queue. */
  saturated?(): boolean;
}

/** A chunk of tokens the target committed, and what it verified to get them. */
export interface AssistedChunk {
  tokens: GeneratedToken[];
  /** Draft tokens of the proposal it used (0: it decoded alone). */
  drafted: number;
  accepted: number;
  /** Draft tokens that lined up but that a shared target declined to verify (its time was worth more). */
  declined?: number;
  /** The drafts verified were a tree's branch (the target's own correction, continued), not its chain. */
  branch?: boolean;
  /** The window the target would verify at, by its own costs (a target that knows them says so). */
  window?: number;
}

/** A stream from a target that decodes by itself and takes proposals where they line up. */
export interface AssistedStream {
  chunks: AsyncIterable<AssistedChunk>;
  /**
   * Draft tokens for the context positions from `at` on (stale ones are dropped by the target),
   * with the tree's branches off that chain when there are any; no drafts with branches: the
   * branches of the chain already proposed from `at`.
   */
  propose(
    at: number,
    drafts: readonly number[],
    branches?: readonly { from: number; tokens: number[] }[],
    window?: number,
  ): void;
  /** Tokens the target makes before a proposal sent now reaches it (link round trip ÷ its pace). */
  lead?(): number | undefined;
  /** The target's pace decoding alone, ms per token, as seen here. */
  paceMs?(): number | undefined;
}

/** A target that can run the assisted stream (the dsd verifier). */
export interface AssistedTarget {
  assist(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AssistedStream;
}

/** The target model, as the engine needs it. */
export interface TargetPort {
  /** The target's own sample (and distribution) after each prompt, all in one batch. */
  score(prompts: readonly (readonly number[])[], signal: AbortSignal): Promise<GeneratedToken[]>;
  /**
   * The target alone, streaming. `ctx` (here and in `assist`) is the engine's own context, which
   * grows as it commits the stream's tokens: a port that keeps it past the call copies it.
   */
  generate(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AsyncIterable<GeneratedToken>;
  /** A target that decodes by itself and takes proposals as they come (the verifier's stream). */
  assist?: AssistedTarget['assist'];
  /**
   * Whether the stream is the better way now (absent: always, when `assist` is there). Asked
   * before each round: rounds taken alone on the target go over to the stream when others join.
   */
  streamNow?: () => boolean;
}

/** A draft and the planner that knows its pairing with the target. */
export interface DraftSlot {
  port: DraftPort;
  planner: SpeculationPlanner;
  /** Names the draft in fallback reasons and logs. */
  name: string;
}

/** Everything one speculative generation needs. */
export interface EngineOptions {
  prompt: readonly number[];
  draft: DraftSlot | undefined;
  /** Another draft after one failed (a pool member), or undefined to go on target-only. */
  replaceDraft?: (failed: DraftSlot, reason: string) => Promise<DraftSlot | undefined>;
  target: TargetPort;
  rule: AcceptanceRule;
  maxTokens: number;
  /** Prompt + output may not exceed this. */
  contextTokens: number;
  /** Prompts the target may score in one batch (k+1 ≤ this), asked each round: it can shrink
   *  while other requests share the target's slots. */
  maxPositions: () => number;
  /** Keep the draft busy during verification on the optimistic continuation. */
  draftAhead: boolean;
  /** Branches of a proposal tree: in the verifier's stream, and beside draft-ahead in rounds (default 0: none). */
  treeBranches?: number;
  /** The largest window (DSD_WINDOW_MAX): a stream following its target's window stops there. */
  windowMax?: number;
  /**
   * Rounds draft-ahead may send for verification before the previous verdict, unless the planner
   * says otherwise (0: draft ahead only).
   */
  aheadDepth: number;
  /** True for a token that ends generation (EOS, a requested stop token id). */
  isEnd: (token: GeneratedToken) => boolean;
  /** Rejects draft output that the target must never see (ids outside the vocabulary). */
  isValidDraftToken: (id: number) => boolean;
  rng: Rng;
  now: () => number;
  signal: AbortSignal;
  /** Filled as the generation goes (the caller keeps it even when it stops the generator early). */
  stats: SpeculationStats;
  /** Called when a draft fails. */
  onDraftFailure?: (draft: DraftSlot, reason: string, err: unknown) => void;
  /** Called after every round (per-round logging). */
  onRound?: (round: {
    draft: string;
    k: number;
    accepted: number;
    committed: number;
    draftMs: number;
    verifyMs: number;
    /** Rounds of draft-ahead this one was verified ahead of its predecessor's verdict (0: none). */
    depth: number;
    reason: string;
  }) => void;
}

/** The engine's final word: why it finished and what it measured. */
export interface EngineResult {
  finish: EngineFinish;
  stats: SpeculationStats;
}

/** A round's committed tokens (or target-only tokens), in order. */
export interface CommittedTokens {
  tokens: GeneratedToken[];
  source: 'round' | 'target-only';
}
