import { verifyByMatch, verifyByRejection, type AcceptanceRule, type DraftCandidate, type TargetPosition, type Verdict } from './acceptance.js';
import { DraftAhead } from './draft-ahead.js';
import type { CommittedTokens, DraftSlot, EngineOptions, EngineResult } from './engine-types.js';
import { committedToken, GenerationState } from './generation-state.js';
import type { Rng, TokenProb } from './sampling.js';
import { recordRound } from './stats.js';
import { targetOnlyStretch } from './target-only-stretch.js';
import type { GeneratedToken } from './types.js';
import { roundWindow } from './window.js';

export type { CommittedTokens, DraftPort, DraftSlot, EngineOptions, EngineResult, TargetPort } from './engine-types.js';
export type { EngineFinish } from './generation-state.js';

/** Draft output the round may use, or why the draft is unusable. */
type Proposal = { kind: 'ok'; tokens: GeneratedToken[]; waitMs: number; workMs: number } | { kind: 'failed'; reason: string; err: unknown };

/**
 * Generates with speculative rounds — propose k draft tokens, score all k+1 positions on the
 * target in one batch, verify by the acceptance rule, commit, observe — with k chosen by the
 * draft's planner each round. When the planner finds that speculation does not pay, the target
 * generates alone in one stream while the draft runs in shadow; when it pays again, rounds resume.
 * A failing draft costs speed, never correctness: another draft or the target alone takes over.
 * Returning early (stop string, client gone) aborts whatever request is in flight.
 */
export async function* runSpeculation(o: EngineOptions): AsyncGenerator<CommittedTokens, EngineResult> {
  const state = new GenerationState(o.prompt, { maxTokens: o.maxTokens, contextTokens: o.contextTokens, isEnd: o.isEnd }, o.stats);
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort(o.signal.reason);
  o.signal.addEventListener('abort', onOuterAbort, { once: true });
  let draft = o.draft;
  const ahead = new DraftAhead(o.now, o.stats);
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
      const decision = draft === undefined ? undefined : draft.planner.decide();
      if (draft === undefined || decision?.kind === 'target-only') {
        ahead.drop();
        const stretch = targetOnlyStretch({ state, target: o.target, draft, shadowEvery: 8, shadowK: decision?.kind === 'speculate' ? decision.k : 4, now: o.now, signal: inner.signal });
        let step = await stretch.next();
        for (; !step.done; step = await stretch.next()) yield { tokens: step.value, source: 'target-only' };
        if (step.value.kind === 'finished') return { finish: step.value.finish, stats: o.stats };
        continue;
      }
      const k = roundWindow(decision?.kind === 'speculate' ? decision.k : 1, state.remaining, o.maxPositions());

      // propose
      const proposal = await propose(o, draft, ahead, state.ctx, k, inner.signal);
      if (proposal.kind === 'failed') {
        if (o.signal.aborted) throw o.signal.reason;
        await dropDraft(draft, proposal.reason, proposal.err);
        continue;
      }

      // score (the draft works ahead meanwhile)
      const verifyStart = o.now();
      const prompts = [state.ctx.slice()];
      for (const t of proposal.tokens) prompts.push([...(prompts[prompts.length - 1] as number[]), t.id]);
      const scoring = o.target.score(prompts, inner.signal);
      if (o.draftAhead && proposal.tokens.length === k && k > 0) ahead.start(draft.port, prompts[prompts.length - 1] as number[], k, inner.signal);
      const scored = await scoring;
      const verifyMs = o.now() - verifyStart;

      // verify
      const verdict = verify(o.rule, proposal.tokens, scored, o.rng);

      // commit
      const tokens = verdict.tokens.map((id, i) => committedToken(id, scored[verdict.positions[i] as number], proposal.tokens[i]));
      const { kept, finish } = state.take(tokens);
      ahead.keepIf(state.ctx);

      // observe
      recordRound(o.stats, { drafted: proposal.tokens.length, accepted: verdict.accepted, committed: kept.length, draftMs: proposal.waitMs, verifyMs });
      draft.planner.observeRound({ drafted: proposal.tokens.length, accepted: verdict.accepted, draftMs: proposal.waitMs, draftWorkMs: proposal.workMs, verifyMs });
      o.onRound?.({ draft: draft.name, k, accepted: verdict.accepted, committed: kept.length, draftMs: proposal.waitMs, verifyMs, reason: decision?.reason ?? '' });
      yield { tokens: kept, source: 'round' };
      if (finish) return { finish, stats: o.stats };
    }
  } finally {
    o.signal.removeEventListener('abort', onOuterAbort);
    ahead.cancel();
    inner.abort();
  }
}

/** This round's draft tokens: from draft-ahead when it guessed this context, else asked now. */
async function propose(o: EngineOptions, draft: DraftSlot, ahead: DraftAhead, ctx: readonly number[], k: number, signal: AbortSignal): Promise<Proposal> {
  if (k === 0) return { kind: 'ok', tokens: [], waitMs: 0, workMs: 0 };
  const started = o.now();
  let tokens: GeneratedToken[];
  let workMs: number;
  try {
    const ready = await ahead.take(ctx, k);
    if (ready !== undefined) {
      tokens = ready.tokens;
      workMs = ready.workMs;
    } else {
      tokens = await draft.port.propose(ctx, k, signal);
      workMs = o.now() - started;
    }
  } catch (err) {
    return { kind: 'failed', reason: `draft ${draft.name} failed: ${(err as Error)?.message ?? String(err)}`, err };
  }
  const bad = tokens.find((t) => !o.isValidDraftToken(t.id));
  if (bad !== undefined) return { kind: 'failed', reason: `draft ${draft.name} returned token id ${bad.id} outside the vocabulary`, err: undefined };
  return { kind: 'ok', tokens: tokens.slice(0, k), waitMs: o.now() - started, workMs };
}

/** The distribution a server reported at a position (its own token included even when outside the top list). */
function toDist(t: GeneratedToken): TokenProb[] | undefined {
  if (t.top === undefined) return undefined;
  const dist = t.top.map((x) => ({ id: x.id, prob: Math.exp(x.logprob) }));
  if (t.logprob !== undefined && !dist.some((x) => x.id === t.id)) dist.push({ id: t.id, prob: Math.exp(t.logprob) });
  return dist;
}

function verify(rule: AcceptanceRule, proposal: GeneratedToken[], scored: GeneratedToken[], rng: Rng): Verdict {
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
