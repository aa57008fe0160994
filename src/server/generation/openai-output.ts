import { randomUUID } from 'node:crypto';
import type { OpenAiRoute } from '../../backends/types.js';
import { acceptanceRate, meanAcceptanceLength, type SpeculationStats } from '../../speculative/stats.js';

/** OpenAI finish reasons dsd produces. */
export type FinishReason = 'stop' | 'length';

/** Usage with OpenAI's prediction fields and dsd's extension. */
export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
  dsd: SpeculationSummary;
}

/** dsd's per-request speculation figures (snake_case: it is wire output). */
export interface SpeculationSummary {
  rounds: number;
  draft_tokens: number;
  accepted_tokens: number;
  acceptance_rate: number;
  mean_acceptance_length: number;
  target_only_tokens: number;
  draft_ms: number;
  verify_ms: number;
  acceptance_rule: string;
  fallback: string | null;
  draft_ahead_hits: number;
  draft_ahead_misses: number;
  draft_ahead_saved_ms: number;
  /** Rounds sent for verification before the previous round's verdict. */
  draft_ahead_early_verifications: number;
  /** Of those, the ones dropped at a miss (target work spent for nothing). */
  draft_ahead_wasted_verifications: number;
  /** Share of the target's verification prompt tokens it had to compute (not from its KV cache). */
  verify_prompt_recomputed_fraction: number | null;
  /** Branches sent in proposal trees (the verifier's stream). */
  tree_branches: number;
  /** Steps that verified a branch: rejections that cost no round trip. */
  tree_branch_steps: number;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/** The speculation summary of a request. */
export function summarize(stats: SpeculationStats, rule: string): SpeculationSummary {
  return {
    rounds: stats.rounds,
    draft_tokens: stats.draftTokens,
    accepted_tokens: stats.acceptedTokens,
    acceptance_rate: round3(acceptanceRate(stats)),
    mean_acceptance_length: round3(meanAcceptanceLength(stats)),
    target_only_tokens: stats.targetOnlyTokens,
    draft_ms: round3(stats.draftMs),
    verify_ms: round3(stats.verifyMs),
    acceptance_rule: rule,
    fallback: stats.fallbackReason ?? null,
    draft_ahead_hits: stats.draftAheadHits,
    draft_ahead_misses: stats.draftAheadMisses,
    draft_ahead_saved_ms: round3(stats.draftAheadSavedMs),
    draft_ahead_early_verifications: stats.earlyVerifications,
    draft_ahead_wasted_verifications: stats.earlyVerificationsWasted,
    verify_prompt_recomputed_fraction:
      stats.verifyPromptComputed + stats.verifyPromptCached === 0
        ? null
        : round3(stats.verifyPromptComputed / (stats.verifyPromptComputed + stats.verifyPromptCached)),
    tree_branches: stats.treeBranches,
    tree_branch_steps: stats.treeBranchSteps,
  };
}

/** Usage of a request, with draft tokens accepted/rejected in OpenAI's prediction fields. */
export function usageBody(promptTokens: number, completionTokens: number, summary: SpeculationSummary): UsageBody {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens_details: {
      accepted_prediction_tokens: summary.accepted_tokens,
      rejected_prediction_tokens: summary.draft_tokens - summary.accepted_tokens,
    },
    dsd: summary,
  };
}

/** The same figures as response headers (non-streaming responses). */
export function summaryHeaders(s: SpeculationSummary): Record<string, string> {
  return {
    'x-dsd-rounds': String(s.rounds),
    'x-dsd-draft-tokens': String(s.draft_tokens),
    'x-dsd-accepted-tokens': String(s.accepted_tokens),
    'x-dsd-mean-acceptance-length': String(s.mean_acceptance_length),
    'x-dsd-draft-ms': String(s.draft_ms),
    'x-dsd-verify-ms': String(s.verify_ms),
    'x-dsd-acceptance-rule': s.acceptance_rule,
  };
}

/** Builds the OpenAI objects of one response (ids and timestamps shared by all chunks). */
export class OpenAiResponseBuilder {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly route: OpenAiRoute,
    private readonly model: string,
  ) {
    this.id = `${route === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
  }

  private envelope(object: string) {
    return { id: this.id, object, created: this.created, model: this.model };
  }

  /** The first chat chunk (role only); completions have none. */
  roleChunk(): unknown | undefined {
    if (this.route !== 'chat') return undefined;
    return {
      ...this.envelope('chat.completion.chunk'),
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    };
  }

  /** A content chunk, or the final chunk when `finish` is given; `logprobs` as built by logprobsBody. */
  chunk(text: string, finish: FinishReason | null = null, logprobs: unknown = null): unknown {
    if (this.route === 'chat') {
      const delta = finish === null ? { content: text } : text === '' ? {} : { content: text };
      return {
        ...this.envelope('chat.completion.chunk'),
        choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
      };
    }
    return { ...this.envelope('text_completion'), choices: [{ index: 0, text, logprobs, finish_reason: finish }] };
  }

  /** The usage chunk (`choices: []`) sent when the client asked for `include_usage`. */
  usageChunk(usage: UsageBody): unknown {
    return {
      ...this.envelope(this.route === 'chat' ? 'chat.completion.chunk' : 'text_completion'),
      choices: [],
      usage,
    };
  }

  /** The complete non-streaming response. */
  complete(text: string, finish: FinishReason, usage: UsageBody, logprobs: unknown = null): unknown {
    if (this.route === 'chat') {
      return {
        ...this.envelope('chat.completion'),
        choices: [
          { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs, finish_reason: finish },
        ],
        usage,
      };
    }
    return {
      ...this.envelope('text_completion'),
      choices: [{ index: 0, text, logprobs, finish_reason: finish }],
      usage,
    };
  }
}
