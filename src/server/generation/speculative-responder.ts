import type { Response } from 'express';
import { DsdError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import {
  type CommittedTokens,
  type EngineFinish,
  type EngineOptions,
  type EngineResult,
  runSpeculation,
} from '../../speculative/engine.js';
import { emptyStats, type SpeculationStats } from '../../speculative/stats.js';
import type { DsdContext } from '../context.js';
import type { GenerationRequest } from '../request-types.js';
import type { ConnectedServer } from '../upstreams/connected-server.js';
import { CompletionOutput } from './completion-output.js';
import { type FinishReason, summarize, usageBody } from './openai-output.js';
import { buildPromptIds } from './prompt-builder.js';
import { RacingTokenizer } from './racing-tokenizer.js';
import { openSession, type SpeculativeSession } from './speculative-session.js';

/** One speculative request: the client's request and its target. */
export interface SpeculativeRequest {
  ctx: DsdContext;
  request: GenerationRequest;
  target: ConnectedServer;
  res: Response;
  signal: AbortSignal;
}

/** Prompt ids, and when they came from the draft's tokenizer, how to get the target's own. */
interface PreparedPrompt {
  ids: number[];
  /** The target's ids (the same array when they agree); set only while `ids` are provisional. */
  confirm?: () => Promise<number[]>;
}

function checkContext(r: SpeculativeRequest, ids: readonly number[]): void {
  if (ids.length >= r.target.info.contextTokens) {
    throw new DsdError(
      'invalid_request',
      `the prompt is ${ids.length} tokens; the model's context is ${r.target.info.contextTokens}`,
      { param: r.request.route === 'chat' ? 'messages' : 'prompt' },
    );
  }
}

/**
 * Builds the prompt ids, tokenizing on the draft and the target at once (RacingTokenizer): the
 * first round then starts without waiting a round trip for the distant target's /tokenize, and
 * the target's answer arrives alongside that round's verdict. Releases the session on failure.
 */
async function promptFor(r: SpeculativeRequest, session: SpeculativeSession): Promise<PreparedPrompt> {
  const { ctx, request, target, signal } = r;
  const build = {
    input: request.input,
    target: target.server,
    model: request.model,
    scope: request.cacheScope,
    cache: ctx.promptCache,
    signal,
  };
  try {
    const racing = new RacingTokenizer(target.server, session.draftTokenize);
    const ids = await buildPromptIds({ ...build, tokenize: racing.fast, confirm: () => racing.confirmed() });
    checkContext(r, ids);
    if (!racing.provisional) return { ids };
    const confirm = async () => {
      const agreed = await racing.confirmed();
      ctx.metrics.draftTokenizations.inc({ outcome: agreed ? 'confirmed' : 'rejected' });
      if (agreed) return ids;
      (r.res.locals.logger as Logger | undefined)?.warn(
        "draft and target tokenize this prompt differently; the target's ids are used",
      );
      const own = await buildPromptIds({ ...build, tokenize: racing.targetTokenize });
      checkContext(r, own);
      return own;
    };
    return { ids, confirm };
  } catch (err) {
    session.release();
    throw err;
  }
}

type Run = ReturnType<typeof runSpeculation>;
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

/**
 * Starts the engine on the prompt and takes its first step. With provisional ids, nothing reaches
 * the client before the target's own ids are in: when they differ, the run is dropped (aborting
 * what it has in flight) and started again on the target's ids.
 */
async function startRun(
  session: SpeculativeSession,
  prompt: PreparedPrompt,
  stats: SpeculationStats,
): Promise<StartedRun> {
  const engine = session.engine(prompt.ids);
  const run = runSpeculation(engine);
  if (prompt.confirm === undefined) return { engine, run, first: await run.next() };
  const [first, own] = await Promise.all([settle(run.next()), settle(prompt.confirm())]);
  if (own.ok && own.value === prompt.ids) {
    if (!first.ok) throw first.error;
    return { engine, run, first: first.value };
  }
  await run.return({ finish: 'stop', stats }).catch(() => undefined);
  if (!own.ok) throw own.error;
  return startRun(session, { ids: own.value }, stats);
}

interface StartedRun {
  engine: EngineOptions;
  run: Run;
  first: IteratorResult<CommittedTokens, EngineResult>;
}

/**
 * Serves a request with speculative rounds, streaming each round's committed text. Returns false
 * (having sent nothing) when no draft is available or the target alone is known to be faster, so
 * the caller sends the request straight to the target.
 */
export async function serveSpeculative(r: SpeculativeRequest): Promise<boolean> {
  const { ctx, request, target, res, signal } = r;
  const stats = emptyStats();
  const logger = (res.locals.logger as Logger | undefined) ?? ctx.logger;
  const session = await openSession({
    ctx,
    request,
    target,
    stats,
    signal,
    logger,
    requestId: res.locals.requestId as string | undefined,
  });
  if (session === undefined) return false;
  const prompt = await promptFor(r, session);
  ctx.counters.speculative += 1;
  const startMs = performance.now();
  let run: Run | undefined;
  let out: CompletionOutput | undefined;
  try {
    const started = await startRun(session, prompt, stats);
    run = started.run;
    const promptIds = started.engine.prompt;
    out = new CompletionOutput({
      request,
      res,
      target: () => session.target(),
      bytesCache: ctx.bytesCache,
      lastPromptId: promptIds[promptIds.length - 1],
      isEnd: started.engine.isEnd,
      signal,
    });
    let finish: FinishReason = 'length';
    for (let step = started.first; ; step = await run.next()) {
      if (step.done) {
        finish = toFinish(step.value.finish);
        break;
      }
      await out.add(step.value.tokens);
      if (out.done) {
        // A stop string (or a departed client): end the engine, which aborts what is in flight.
        await run.return({ finish: 'stop', stats });
        finish = 'stop';
        break;
      }
    }
    const summary = summarize(stats, session.ruleLabel);
    ctx.metrics.observeGeneration(request.route, 'speculative', {
      startMs,
      firstTokenMs: out.firstTokenMs ?? performance.now(),
      endMs: performance.now(),
      tokens: out.completionTokens,
    });
    res.locals.summary = {
      ...(res.locals.summary as object | undefined),
      mode: 'speculative',
      completionTokens: out.completionTokens,
      finish,
      rounds: summary.rounds,
      acceptanceRate: summary.acceptance_rate,
      meanAcceptanceLength: summary.mean_acceptance_length,
      targetOnlyTokens: summary.target_only_tokens,
      fallback: summary.fallback,
    };
    await out.finish(finish, usageBody(promptIds.length, out.completionTokens, summary));
  } catch (err) {
    await run?.return({ finish: 'stop', stats }).catch(() => undefined);
    // Nothing sent yet (the first step failed): the error handler answers with a proper status.
    if (out === undefined) throw err;
    await out.fail(err);
  } finally {
    session.release();
    ctx.metrics.observeSpeculation(stats);
  }
  return true;
}

function toFinish(f: EngineFinish): FinishReason {
  switch (f) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
  }
}
