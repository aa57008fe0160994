import type { AssistedTarget, CommittedTokens, DraftSlot, EngineOptions, EngineResult } from './engine-types.js';

export type { AssistedChunk, AssistedStream, AssistedTarget } from './engine-types.js';

import { alignedPath, draftTree } from './draft-tree.js';
import { GenerationState } from './generation-state.js';
import { recordRound } from './stats.js';

/** Tokens to draft beyond k: what the target makes while a proposal is on its way (FACTS, lesson 2). */
export function proposalLength(k: number, tokensPerTurnaround: number, cap: number): number {
  return Math.max(1, Math.min(cap, k + Math.ceil(tokensPerTurnaround)));
}

/**
 * Generation with a target that never waits for the network: it streams its own tokens, and the
 * edge drafts from the newest context it has seen and sends each proposal tagged with its
 * position. The target verifies a proposal where it lines up with what it committed meanwhile
 * (draft tokens it already passed must equal its own), in one batched step, with the same match
 * rule as a round; otherwise it decodes alone. So the stream is never slower than the target
 * alone, and each proposal that lines up commits several tokens in one step.
 */
export async function* runAssisted(
  o: EngineOptions,
  draft: DraftSlot,
  target: AssistedTarget,
  k: number,
): AsyncGenerator<CommittedTokens, EngineResult> {
  const state = new GenerationState(
    o.prompt,
    { maxTokens: o.maxTokens, contextTokens: o.contextTokens, isEnd: o.isEnd },
    o.stats,
  );
  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal.reason);
  o.signal.addEventListener('abort', onAbort, { once: true });
  const stream = target.assist(state.ctx, state.remaining, controller.signal);
  let drafting = false;
  let drafterAlive = true;
  let tokensPerTurnaround = 0;
  let draftMsPerProposal = 0;
  const draftFrom = () => {
    if (drafting || !drafterAlive || state.remaining <= 1) return;
    drafting = true;
    const at = state.ctx.length;
    const started = o.now();
    // The target also moves while the draft works: a proposal is that much further behind on arrival.
    const pace = stream.paceMs?.();
    const link = stream.lead?.();
    const lead =
      link === undefined
        ? tokensPerTurnaround
        : link + (pace === undefined || pace <= 0 ? 0 : draftMsPerProposal / pace);
    const n = proposalLength(k, lead, Math.min(o.maxPositions() - 1, state.remaining));
    const chain = (ctx: readonly number[], m: number, alternatives: boolean) =>
      draft.port.propose(ctx, m, controller.signal, alternatives ? 2 : 0);
    // Branches pay where the target moves while a proposal travels (a rejection would cost a round
    // trip); next to the target they only delay the chain by a second draft request.
    const branches = (link ?? 0) >= 1 ? (o.treeBranches ?? 0) : 0;
    draftTree(chain, state.ctx.slice(), n, branches).then(
      ({ tree }) => {
        drafting = false;
        const ms = o.now() - started;
        o.stats.draftMs += ms;
        draftMsPerProposal = draftMsPerProposal === 0 ? ms : 0.7 * draftMsPerProposal + 0.3 * ms;
        const ids = [tree.main, ...tree.branches.map((b) => b.tokens)].flat();
        if (ids.some((id) => !o.isValidDraftToken(id))) {
          drafterAlive = false;
          o.stats.fallbackReason = `draft ${draft.name} returned a token id outside the vocabulary`;
          return;
        }
        // How far the target moved while this proposal was made: the next one drafts that much further.
        tokensPerTurnaround = 0.7 * tokensPerTurnaround + 0.3 * (state.ctx.length - at);
        // Sent only while some path of it still lines up with what the target committed meanwhile.
        if (tree.main.length > 0 && alignedPath(tree, state.ctx) !== undefined) {
          o.stats.treeBranches += tree.branches.length;
          stream.propose(at, tree.main, tree.branches);
        }
      },
      (err: unknown) => {
        drafting = false;
        if (controller.signal.aborted) return;
        drafterAlive = false;
        o.stats.fallbackReason = `draft ${draft.name} failed: ${(err as Error)?.message ?? String(err)}`;
        o.onDraftFailure?.(draft, o.stats.fallbackReason, err);
      },
    );
  };
  // A shared target that declines whole proposals has better use for its time: draft less often
  // (every 2nd, 4th, … 32nd chunk) until one is used again, so drafts and frames are not wasted.
  let backoff = 0;
  let skip = 0;
  try {
    draftFrom();
    for await (const chunk of stream.chunks) {
      if (chunk.drafted > 0) backoff = 0;
      else if ((chunk.declined ?? 0) > 0) {
        backoff = Math.min(32, Math.max(1, 2 * backoff));
        skip = backoff;
      }
      if (chunk.branch === true) o.stats.treeBranchSteps += 1;
      if (chunk.drafted > 0) {
        const committed = Math.min(chunk.tokens.length, chunk.accepted + 1);
        recordRound(o.stats, { drafted: chunk.drafted, accepted: chunk.accepted, committed, draftMs: 0, verifyMs: 0 });
      } else o.stats.targetOnlyTokens += chunk.tokens.length;
      const { kept, finish } = state.take(chunk.tokens);
      yield { tokens: kept, source: chunk.drafted > 0 ? 'round' : 'target-only' };
      if (finish) return { finish, stats: o.stats };
      if (skip > 0) skip -= 1;
      else draftFrom();
    }
    return { finish: state.remaining <= 0 ? 'length' : 'stop', stats: o.stats };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    controller.abort();
  }
}
