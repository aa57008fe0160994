import type { Response } from 'express';
import { DsdError } from '../errors.js';
import type { Logger } from '../logger.js';
import { runSpeculation, type EngineFinish } from '../speculative/engine.js';
import { emptyStats } from '../speculative/stats.js';
import { CompletionOutput } from './completion-output.js';
import type { DsdContext } from './context.js';
import { summarize, usageBody, type FinishReason } from './openai-output.js';
import { buildPromptIds } from './prompt-builder.js';
import type { GenerationRequest } from './request-types.js';
import { openSession, type SpeculativeSession } from './speculative-session.js';
import type { ConnectedServer } from './upstreams.js';

/** One speculative request: the client's request and its target. */
export interface SpeculativeRequest {
  ctx: DsdContext;
  request: GenerationRequest;
  target: ConnectedServer;
  res: Response;
  signal: AbortSignal;
}

/** Builds the prompt ids and checks them against the context; releases the session on failure. */
async function promptFor(r: SpeculativeRequest, session: SpeculativeSession): Promise<number[]> {
  const { ctx, request, target, signal } = r;
  try {
    const ids = await buildPromptIds({ input: request.input, target: target.server, model: request.model, cache: ctx.promptCache, signal });
    if (ids.length >= target.info.contextTokens) {
      throw new DsdError('invalid_request', `the prompt is ${ids.length} tokens; the model's context is ${target.info.contextTokens}`, { param: request.route === 'chat' ? 'messages' : 'prompt' });
    }
    return ids;
  } catch (err) {
    session.release();
    throw err;
  }
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
  const session = await openSession({ ctx, request, target, stats, signal, logger, requestId: res.locals.requestId as string | undefined });
  if (session === undefined) return false;
  const promptIds = await promptFor(r, session);
  const engine = session.engine(promptIds);
  const run = runSpeculation(engine);
  ctx.counters.speculative += 1;
  const startMs = performance.now();
  const out = new CompletionOutput({ request, res, target: target.server, bytesCache: ctx.bytesCache, lastPromptId: promptIds[promptIds.length - 1], isEnd: engine.isEnd, signal });
  try {
    let finish: FinishReason = 'length';
    for (let step = await run.next(); ; step = await run.next()) {
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
    ctx.metrics.observeGeneration(request.route, 'speculative', { startMs, firstTokenMs: out.firstTokenMs ?? performance.now(), endMs: performance.now(), tokens: out.completionTokens });
    res.locals.summary = { ...(res.locals.summary as object | undefined), mode: 'speculative', completionTokens: out.completionTokens, finish, rounds: summary.rounds, acceptanceRate: summary.acceptance_rate, meanAcceptanceLength: summary.mean_acceptance_length, targetOnlyTokens: summary.target_only_tokens, fallback: summary.fallback };
    await out.finish(finish, usageBody(promptIds.length, out.completionTokens, summary));
  } catch (err) {
    await run.return({ finish: 'stop', stats }).catch(() => undefined);
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
