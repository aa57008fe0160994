import type { DraftProfile, StepCost, TargetProfile } from './profiles.js';
import type { Distribution } from './random.js';

/** Edge devices running drafts. */
export interface EdgeSpec {
  /** How many identical edges. */
  count: number;
  /** Draft time per generated token (ms), plus a part growing with the context. */
  draftMsPerToken: number;
  draftMsPerContextToken?: number;
  /** Draft time per prompt token when a request starts (prefill). */
  draftPrefillMsPerToken?: number;
  /** Draft time once per draft request, whatever its length. */
  draftMsPerRequest?: number;
  /**
   * The device profile these figures came from. In a scenario file, a path (relative to it) whose
   * figures fill the fields the edge leaves out.
   */
  profile?: DraftProfile;
  /** Draft requests an edge runs at once. */
  concurrency: number;
  /** This edge group's link to the cloud (overrides the scenario's). */
  link?: LinkSpec;
}

/** One edge–cloud link (each direction). */
export interface LinkSpec {
  oneWayMs: number;
  /** Bytes per second; Infinity for no limit. */
  bandwidthBytesPerS: number;
  jitterMs?: Distribution;
}

/** Cloud targets with continuous batching. */
export interface TargetSpec {
  count: number;
  /** Sequences per batched step. */
  maxBatch: number;
  /** A batched step costs stepFixedMs + stepPerTokenMs × tokens in the batch (unless `profile`). */
  stepFixedMs: number;
  stepPerTokenMs: number;
  /**
   * A device profile's step cost, in place of the two figures above (which a scenario file may then
   * leave out). In a scenario file, a path relative to it (`"profiles/h100-llama-3-8b.json"`).
   */
  profile?: TargetProfile;
  /**
   * Tokens computed to score k+1 positions: `shared-prefix` (vLLM prefix caching: the k+1
   * prompts share their prefix, k+1 tokens) or `separate-slots` (llama.cpp slots: each position's
   * prompt in its own slot, (k+1)(k+2)/2 tokens).
   */
  verifyTokens: 'shared-prefix' | 'separate-slots';
  /**
   * A target split into pipeline stages on as many devices (model partitioning), a link between
   * each: every step crosses them all in turn, so it costs its compute (the same total, split
   * among the stages) plus `count − 1` link crossings of `linkOneWayMs` each. Stages are not
   * pipelined across batches: a step holds the whole pipeline until it ends.
   */
  stages?: StageSpec;
}

/** A target's step cost: its profile's, or the scenario's two figures. */
export function targetStepCost(t: TargetSpec): StepCost {
  return t.profile?.step ?? { fixedMs: t.stepFixedMs, perPositionMs: t.stepPerTokenMs };
}

/** Pipeline stages of a partitioned target. */
export interface StageSpec {
  count: number;
  /** One way between two neighbouring stages, activations' transfer included. */
  linkOneWayMs: number;
}

/** What the links between a partitioned target's stages add to each of its steps. */
export function stageLinksMs(stages: StageSpec | undefined): number {
  return stages === undefined ? 0 : Math.max(0, stages.count - 1) * stages.linkOneWayMs;
}

/** Where acceptance comes from. */
export type AcceptanceSpec =
  | { kind: 'iid'; rate: number }
  | { kind: 'per-position'; rates: number[] }
  /**
   * Rounds recorded by the proxy (DSD_TRACE_FILE lines: k, accepted), replayed as per-position
   * rates. In a scenario file, `file` (a JSONL trace, relative to the scenario) may stand for `rounds`.
   */
  | { kind: 'trace'; rounds: { k: number; accepted: number }[]; file?: string };

/** How requests arrive. */
export type ArrivalSpec =
  | { kind: 'poisson'; ratePerS: number; requests: number }
  | { kind: 'closed-loop'; users: number; requestsPerUser: number; thinkMs: Distribution }
  | { kind: 'trace'; arrivalsMs: number[] };

/** How a request is placed on an edge and a target. */
export type RoutingPolicy = 'random' | 'round-robin' | 'join-shortest-queue';

/** What is simulated for a request. */
export type StrategySpec =
  | { kind: 'target-only' }
  /** The draft on the target device, its time charged to that device (batched draft steps of draftMsPerToken). */
  | { kind: 'single-node'; k: number; draftMsPerToken: number }
  /** draftAhead: draft during verification; aheadDepth ≥ 1 also sends up to that many rounds early. */
  | { kind: 'dsd-fixed'; k: number; draftAhead?: boolean; aheadDepth?: number; verifier?: boolean }
  /**
   * verifier: rounds go to a `dsd verifier` beside the target: k+1 tokens of one sequence per
   * round (its KV kept), frames that carry only deltas; without it, per-round HTTP to the target.
   */
  | { kind: 'dsd-adaptive'; draftAhead?: boolean; aheadDepth?: number; verifier?: boolean }
  /**
   * The stream through a `dsd verifier` (what the edge runs across a link): the target never waits
   * for a verdict; proposals of k + lead drafts (the lead measured as the edge does, or
   * `leadTokens`); `branches` per proposal, each covering a miss with probability
   * `runnerUpCoverage` (the draft's 2nd choice is the target's) and costing `branchCost` of the
   * chain's draft time (default 1: this project's CPU draft).
   */
  | {
      kind: 'dsd-stream';
      k: number;
      /** The window follows the one the target would verify at by its own costs (the edge's rule
       *  unless the user fixed k: streamWindow), up to `windowMax` (16); k is where it starts. */
      follow?: boolean;
      leadTokens?: number;
      branches?: number;
      runnerUpCoverage?: number;
      branchCost?: number;
    };

/** A full DSD-Si scenario (JSON). */
export interface Scenario {
  name: string;
  seed: number;
  edges: EdgeSpec[];
  targets: TargetSpec;
  link: LinkSpec;
  workload: {
    arrivals: ArrivalSpec;
    promptTokens: Distribution;
    outputTokens: Distribution;
    edgeRouting: RoutingPolicy;
    targetRouting: RoutingPolicy;
  };
  acceptance: AcceptanceSpec;
  strategies: StrategySpec[];
  /** Bounds of the adaptive window. */
  window?: { min: number; max: number };
  /** Bytes on the wire: per token id in a request, per request, per scored position in a response. */
  wire?: { bytesPerPromptToken: number; bytesPerRequest: number; bytesPerPosition: number };
}

/** A strategy's name in tables and charts. */
export function strategyName(s: StrategySpec): string {
  switch (s.kind) {
    case 'target-only':
      return 'target only';
    case 'single-node':
      return `single-node SD k=${s.k}`;
    case 'dsd-fixed':
      return `DSD k=${s.k}${aheadLabel(s)}`;
    case 'dsd-adaptive':
      return `DSD adaptive${aheadLabel(s)}`;
    case 'dsd-stream':
      return `DSD stream ${s.follow === true ? `from k=${s.k}, the target's window` : `k=${s.k}`}${
        (s.branches ?? 0) > 0 ? `, ${s.branches} branches` : ''
      }`;
  }
}

function aheadLabel(s: { draftAhead?: boolean; aheadDepth?: number; verifier?: boolean }): string {
  const via = s.verifier === true ? ' via verifier' : '';
  if (s.draftAhead !== true) return via;
  return `${via}${(s.aheadDepth ?? 0) > 0 ? ` + ahead (${s.aheadDepth} early)` : ' + ahead'}`;
}

/** The default scenario of `dsd sim`: 8 edges, 2 targets, 10 ms one-way, α = 0.8. */
export const DEFAULT_SCENARIO: Scenario = {
  name: 'default: 8 edges, 2 targets, 10 ms one-way',
  seed: 1,
  edges: [{ count: 8, draftMsPerToken: 2, concurrency: 2 }],
  targets: { count: 2, maxBatch: 16, stepFixedMs: 20, stepPerTokenMs: 0.1, verifyTokens: 'shared-prefix' },
  link: { oneWayMs: 10, bandwidthBytesPerS: 12_500_000, jitterMs: { kind: 'uniform', min: 0, max: 2 } },
  workload: {
    arrivals: { kind: 'poisson', ratePerS: 2, requests: 200 },
    promptTokens: { kind: 'uniform', min: 50, max: 400 },
    outputTokens: { kind: 'uniform', min: 64, max: 256 },
    edgeRouting: 'round-robin',
    targetRouting: 'join-shortest-queue',
  },
  acceptance: { kind: 'iid', rate: 0.8 },
  strategies: [
    { kind: 'target-only' },
    { kind: 'single-node', k: 4, draftMsPerToken: 1 },
    { kind: 'dsd-fixed', k: 4 },
    { kind: 'dsd-adaptive' },
    { kind: 'dsd-adaptive', draftAhead: true },
  ],
};
