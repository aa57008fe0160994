import {
  type AcceptanceRule,
  type DraftCandidate,
  scoredDrafts,
  type TargetPosition,
  type Verdict,
  verifyByMatch,
  verifyByRejection,
} from './acceptance.js';
import { runAssisted } from './assisted-stream.js';
import { DraftAhead, type SentRound, sendRound } from './draft-ahead.js';
import type { CommittedTokens, DraftSlot, EngineOptions, EngineResult } from './engine-types.js';
import { committedToken, type EngineFinish, GenerationState } from './generation-state.js';
import type { WindowDecision } from './planner.js';
import type { Rng, TokenProb } from './sampling.js';
import { DEFAULT_WINDOW_MAX } from './shared-window.js';
import { recordRound } from './stats.js';
import { targetOnlyStretch } from './target-only-stretch.js';
import type { GeneratedToken } from './types.js';
import { roundWindow } from './window.js';

export type { CommittedTokens, DraftPort, DraftSlot, EngineOptions, EngineResult, TargetPort } from './engine-types.js';
export type { EngineFinish } from './generation-state.js';

/**
 * Generates with speculative rounds — propose k draft tokens, score all k+1 positions on the
 * target in one batch, verify by the acceptance rule, commit, observe — with k chosen by the
 * draft's planner each round. When the planner finds that speculation does not pay, the target
 * generates alone in one stream while the draft runs in shadow; when it pays again, rounds resume.
 * A failing draft costs speed, never correctness: another draft or the target alone takes over.
 * Returning early (stop string, client gone) aborts whatever request is in flight.
 */
export async function* runSpeculation(o: EngineOptions): AsyncGenerator<CommittedTokens, EngineResult> {
  const streamNow = () => o.target.assist !== undefined && (o.target.streamNow?.() ?? true);
  if (o.draft !== undefined && streamNow()) return yield* assisted(o, o.draft);
  const state = new GenerationState(
    o.prompt,
    { maxTokens: o.maxTokens, contextTokens: o.contextTokens, isEnd: o.isEnd },
    o.stats,
  );
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(o.signal.reason);
  o.signal.addEventListener('abort', onOuterAbort, { once: true });
  let draft = o.draft;
  const ahead = new DraftAhead({ now: o.now, stats: o.stats, target: o.target, signal: inner.signal });
  const dropDraft = async (failed: DraftSlot, reason: string, err: unknown) => {
    ahead.drop();
    o.stats.fallbackReason = reason;
    o.onDraftFailure?.(failed, reason, err);
    draft = (await o.replaceDraft?.(failed, reason)) ?? undefined;
  };
  try {
    for (;;) {
      if (o.signal.aborted) throw o.signal.reason;
      if (state.remaining <= 0) return { finish: 'length', stats: o.stats };
      if (draft !== undefined && streamNow()) {
        ahead.drop();
        // The rest of the generation in the stream, from what the rounds committed.
        return yield* assisted({ ...o, prompt: state.ctx.slice(), maxTokens: state.remaining }, draft);
      }
      const decision = draft === undefined ? undefined : draft.planner.decide();
      if (draft === undefined || decision?.kind === 'target-only') {
        ahead.drop();
        const stretch = targetOnlyStretch({
          state,
          target: o.target,
          draft,
          shadowEvery: 8,
          shadowK: decision?.kind === 'speculate' ? decision.k : 4,
          now: o.now,
          signal: inner.signal,
        });
        let step = await stretch.next();
        for (; !step.done; step = await stretch.next()) yield { tokens: step.value, source: 'target-only' };
        if (step.value.kind === 'finished') return { finish: step.value.finish, stats: o.stats };
        continue;
      }
      const outcome = await speculativeRound({ o, draft, decision, ahead, state, signal: inner.signal });
      switch (outcome.kind) {
        case 'draft-failed':
          if (o.signal.aborted) throw o.signal.reason;
          await dropDraft(draft, outcome.reason, outcome.err);
          continue;
        case 'resend':
          continue;
        case 'committed':
          yield { tokens: outcome.kept, source: 'round' };
          if (outcome.finish) return { finish: outcome.finish, stats: o.stats };
      }
    }
  } finally {
    o.signal.removeEventListener('abort', onOuterAbort);
    ahead.cancel();
    inner.abort();
  }
}

/** The verifier's stream with the planner's window. */
function assisted(o: EngineOptions, draft: DraftSlot): AsyncGenerator<CommittedTokens, EngineResult> {
  const decision = draft.planner.decide();
  const k = decision.kind === 'speculate' ? decision.k : 4;
  const follow = decision.kind !== 'speculate' || decision.fixed !== true;
  return runAssisted(
    o,
    draft,
    { assist: o.target.assist! },
    { k, follow, max: o.windowMax ?? Math.max(k, DEFAULT_WINDOW_MAX) },
  );
}

/** What one speculative round did. */
type RoundOutcome =
  | { kind: 'committed'; kept: GeneratedToken[]; finish?: EngineFinish }
  | { kind: 'draft-failed'; reason: string; err: unknown }
  | { kind: 'resend' };

/** What one speculative round works with. */
interface RoundContext {
  o: EngineOptions;
  draft: DraftSlot;
  decision: WindowDecision | undefined;
  ahead: DraftAhead;
  state: GenerationState;
  signal: AbortSignal;
}

/** One round: propose (or take what draft-ahead made or sent), score, verify, commit, observe. */
async function speculativeRound({ o, draft, decision, ahead, state, signal }: RoundContext): Promise<RoundOutcome> {
  const k = roundWindow(decision?.kind === 'speculate' ? decision.k : 1, state.remaining, o.maxPositions());

  // propose (or find the round draft-ahead already proposed, or already sent)
  const roundStart = o.now();
  const round = await proposeAndSend(o, draft, ahead, state.ctx, k, signal);
  if (round.kind === 'failed') return { kind: 'draft-failed', reason: round.reason, err: round.err };
  const { sent } = round;
  const draftWaitMs = sent.early !== undefined ? 0 : sent.sentAt - roundStart;

  // score (the draft works ahead meanwhile, and may send the next rounds early)
  const depth = o.draftAhead
    ? decision?.kind === 'speculate'
      ? (decision.aheadDepth ?? o.aheadDepth)
      : o.aheadDepth
    : -1;
  // A chain keeps the window it started with; a fresh round shorter than k means the draft ended its text.
  const chainK = sent.early !== undefined ? sent.proposal.length : k;
  if (depth >= 0 && sent.proposal.length === chainK && chainK > 0) {
    ahead.extend(draft.port, sent, chainK, {
      depth,
      maxPositions: o.maxPositions,
      maxCtxLength: state.ctx.length + state.remaining,
      isEnd: o.isEnd,
      isValid: o.isValidDraftToken,
      branches: o.treeBranches ?? 0,
      alternatives: roundAlternatives(o),
    });
  }
  const waitStart = o.now();
  const scored = await sent.scoring;
  if (scored.kind === 'failed') {
    // An early round may have failed for a reason that is gone now: resend this round fresh.
    if (sent.early === undefined || o.signal.aborted) throw scored.err;
    ahead.drop();
    return { kind: 'resend' };
  }
  const verifyMs = o.now() - waitStart;

  // verify (a shared verifier may have scored only the leading drafts: the round is that window)
  const proposal = scoredDrafts(sent.proposal, scored.positions.length);
  const verdict = verify(o.rule, proposal, scored.positions, o.rng);

  // commit
  const tokens = verdict.tokens.map((id, i) =>
    committedToken(id, scored.positions[verdict.positions[i] as number], proposal[i]),
  );
  const { kept, finish } = state.take(tokens);
  ahead.keepIf(state.ctx);

  // observe (the planner learns request times; the statistics count what the client waited)
  const drafted = proposal.length;
  recordRound(o.stats, { drafted, accepted: verdict.accepted, committed: kept.length, draftMs: draftWaitMs, verifyMs });
  const early = sent.early === undefined ? {} : { early: { depth: sent.early.depth, waitMs: o.now() - roundStart } };
  draft.planner.observeRound({
    drafted,
    accepted: verdict.accepted,
    draftMs: draftWaitMs,
    draftWorkMs: sent.draftWorkMs,
    verifyMs: scored.doneAt - sent.sentAt,
    ...early,
  });
  o.onRound?.({
    draft: draft.name,
    k: drafted,
    accepted: verdict.accepted,
    committed: kept.length,
    draftMs: draftWaitMs,
    verifyMs,
    depth: sent.early?.depth ?? 0,
    reason: sent.early !== undefined ? 'sent early by draft-ahead' : (decision?.reason ?? ''),
  });
  return finish === undefined ? { kind: 'committed', kept } : { kind: 'committed', kept, finish };
}

/** Runner-ups to draft with each token in rounds: what draft-ahead's branches are made of. */
function roundAlternatives(o: EngineOptions): number {
  return o.draftAhead && (o.treeBranches ?? 0) > 0 ? 2 : 0;
}

/** A round on its way to the target, or why the draft is unusable. */
type RoundStart = { kind: 'sent'; sent: SentRound } | { kind: 'failed'; reason: string; err: unknown };

/** This round: already sent by draft-ahead, or proposed (by draft-ahead or now) and sent. */
async function proposeAndSend(
  o: EngineOptions,
  draft: DraftSlot,
  ahead: DraftAhead,
  ctx: readonly number[],
  k: number,
  signal: AbortSignal,
): Promise<RoundStart> {
  const started = o.now();
  let tokens: GeneratedToken[] = [];
  let workMs = 0;
  if (k > 0) {
    try {
      const ready = await ahead.take(ctx, k);
      if (ready?.kind === 'sent') return { kind: 'sent', sent: ready.round };
      if (ready !== undefined) ({ tokens, workMs } = ready);
      else {
        tokens = await draft.port.propose(ctx, k, signal, roundAlternatives(o));
        workMs = o.now() - started;
      }
    } catch (err) {
      return { kind: 'failed', reason: `draft ${draft.name} failed: ${(err as Error)?.message ?? String(err)}`, err };
    }
    const bad = tokens.find((t) => !o.isValidDraftToken(t.id));
    if (bad !== undefined)
      return {
        kind: 'failed',
        reason: `draft ${draft.name} returned token id ${bad.id} outside the vocabulary`,
        err: undefined,
      };
  }
  return {
    kind: 'sent',
    sent: sendRound(
      o.target,
      { ctx: [...ctx], proposal: tokens.slice(0, k), draftWorkMs: workMs, early: undefined },
      o.now,
      signal,
    ),
  };
}

/** The distribution a server reported at a position (its own token included even when outside the top list). */
function toDist(t: GeneratedToken): TokenProb[] | undefined {
  if (t.top === undefined) return undefined;
  const dist = t.top.map((x) => ({ id: x.id, prob: Math.exp(x.logprob) }));
  if (t.logprob !== undefined && !dist.some((x) => x.id === t.id)) dist.push({ id: t.id, prob: Math.exp(t.logprob) });
  return dist;
}

function verify(
  rule: AcceptanceRule,
  proposal: readonly GeneratedToken[],
  scored: GeneratedToken[],
  rng: Rng,
): Verdict {
  const withDist = rule === 'rejection';
  const target: TargetPosition[] = scored.map((t) => {
    const dist = withDist ? toDist(t) : undefined;
    return dist === undefined ? { sampled: t.id } : { sampled: t.id, dist };
  });
  const draft: DraftCandidate[] = proposal.map((t) => {
    const dist = withDist ? toDist(t) : undefined;
    return dist === undefined ? { id: t.id } : { id: t.id, dist };
  });
  switch (rule) {
    case 'greedy':
    case 'sample-match':
      return verifyByMatch(draft, target);
    case 'rejection':
      return verifyByRejection(draft, target, rng);
  }
}
