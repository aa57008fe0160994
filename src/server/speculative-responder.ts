import type { Response } from 'express';
import type { TokenBytesCache } from '../cache/token-bytes-cache.js';
import { DsdError } from '../errors.js';
import { runSpeculation, type EngineFinish } from '../speculative/engine.js';
import { emptyStats } from '../speculative/stats.js';
import { TextAssembler } from '../speculative/text-assembler.js';
import type { GeneratedToken } from '../speculative/types.js';
import { openSession } from './speculative-session.js';
import type { ConnectedServer } from './upstreams.js';
import type { Logger } from '../logger.js';
import type { DsdContext } from './context.js';
import { OpenAiResponseBuilder, summarize, summaryHeaders, usageBody, type FinishReason } from './openai-output.js';
import { alternative, logprobsBody, type TokenAlternative, type TokenLogprobEntry } from './logprobs-output.js';
import { buildPromptIds } from './prompt-builder.js';
import type { GenerationRequest } from './request-types.js';
import { SseWriter } from './sse-writer.js';

/** One speculative request: the client's request and its target. */
export interface SpeculativeRequest {
  ctx: DsdContext;
  request: GenerationRequest;
  target: ConnectedServer;
  res: Response;
  signal: AbortSignal;
}

/** A request with its prompt built. */
interface SpeculativeJob extends SpeculativeRequest {
  bytesCache: TokenBytesCache;
}

/**
 * Serves a request with speculative rounds, streaming each round's committed text. Returns false
 * (having sent nothing) when no draft is available, so the caller sends the request to the target.
 */
export async function serveSpeculative(req: SpeculativeRequest): Promise<boolean> {
  const job: SpeculativeJob = { ...req, bytesCache: req.ctx.bytesCache };
  const { request, target, signal, ctx } = job;
  const stats = emptyStats();
  const session = await openSession({ ctx, request, target, bytesCache: job.bytesCache, stats, signal, logger: (job.res.locals.logger as Logger | undefined) ?? ctx.logger });
  if (session === undefined) return false;
  let promptIds: number[];
  try {
    promptIds = await buildPromptIds({ input: request.input, target: target.server, model: request.model, cache: ctx.promptCache, signal });
  } catch (err) {
    session.release();
    throw err;
  }
  const room = target.info.contextTokens - promptIds.length;
  if (room <= 0) {
    session.release();
    throw new DsdError('invalid_request', `the prompt is ${promptIds.length} tokens; the model's context is ${target.info.contextTokens}`, { param: request.route === 'chat' ? 'messages' : 'prompt' });
  }
  const engine = session.engine(promptIds);
  const { isEnd } = engine;
  const run = runSpeculation(engine);
  ctx.counters.speculative += 1;

  const builder = new OpenAiResponseBuilder(request.route, request.model);
  const writer = request.stream ? new SseWriter(job.res) : undefined;
  // The role chunk waits for the first round, so a target that fails at once still gets a status.
  let roleSent = false;
  const startMs = performance.now();
  let firstTokenMs: number | undefined;
  const send = async (chunk: unknown) => {
    firstTokenMs ??= performance.now();
    if (writer === undefined) return;
    if (!roleSent) {
      roleSent = true;
      const role = builder.roleChunk();
      if (role !== undefined) await writer.send(role);
    }
    await writer.send(chunk);
  };
  const assembler = new TextAssembler(request.stop);
  let text = '';
  let completionTokens = 0;
  const allLogprobs: TokenLogprobEntry[] = [];
  let finish: FinishReason = 'length';
  let previousId = promptIds[promptIds.length - 1];
  const lookup = (ids: readonly number[], s: AbortSignal) => target.server.detokenize(ids, s);
  try {
    for (;;) {
      const step = await run.next();
      if (step.done) {
        finish = toFinish(step.value.finish);
        break;
      }
      let delta = '';
      const chunkLogprobs: TokenLogprobEntry[] = [];
      for (const token of step.value.tokens) {
        completionTokens += 1;
        if (isEnd(token)) continue;
        const bytes = await job.bytesCache.bytesOf(token, previousId, lookup, signal);
        if (request.logprobs !== undefined) chunkLogprobs.push(await logprobEntry(job, token, bytes, previousId));
        const piece = assembler.push(bytes);
        previousId = token.id;
        delta += piece.text;
        if (piece.stopped) break;
      }
      const chunkLogprobsBody = request.logprobs === undefined ? null : logprobsBody(request.route, chunkLogprobs, text.length);
      allLogprobs.push(...chunkLogprobs);
      if (assembler.stopped) {
        finish = 'stop';
        await run.return({ finish: 'stop', stats });
      }
      text += delta;
      if (delta !== '' || chunkLogprobs.length > 0) await send(builder.chunk(delta, null, chunkLogprobsBody));
      if (assembler.stopped || writer?.closed) break;
    }
    const tail = assembler.finish().text;
    text += tail;
    const summary = summarize(stats, session.ruleLabel);
    const usage = usageBody(promptIds.length, completionTokens, summary);
    firstTokenMs ??= performance.now();
    ctx.metrics.observeGeneration(request.route, 'speculative', { startMs, firstTokenMs, endMs: performance.now(), tokens: completionTokens });
    job.res.locals.summary = { ...(job.res.locals.summary as object | undefined), mode: 'speculative', completionTokens, finish, rounds: summary.rounds, acceptanceRate: summary.acceptance_rate, meanAcceptanceLength: summary.mean_acceptance_length, targetOnlyTokens: summary.target_only_tokens, fallback: summary.fallback };
    if (writer === undefined) {
      const logprobs = request.logprobs === undefined ? null : logprobsBody(request.route, allLogprobs, 0);
      job.res.set(summaryHeaders(summary)).json(builder.complete(text, finish, usage, logprobs));
      return true;
    }
    await send(builder.chunk(tail, finish));
    if (request.includeUsage) await send(builder.usageChunk(usage));
    await writer.done();
  } catch (err) {
    await run.return({ finish: 'stop', stats }).catch(() => undefined);
    if (writer === undefined || !writer.hasStarted) throw err;
    await writer.fail(err);
  } finally {
    session.release();
    ctx.metrics.observeSpeculation(stats);
  }
  return true;
}

/** A committed token's logprob and top alternatives as the target reported them at its position. */
async function logprobEntry(job: SpeculativeJob, token: GeneratedToken, bytes: Uint8Array, anchorId: number | undefined): Promise<TokenLogprobEntry> {
  const lookup = (ids: readonly number[], s: AbortSignal) => job.target.server.detokenize(ids, s);
  const n = job.request.logprobs ?? 0;
  const own = token.logprob ?? token.top?.find((t) => t.id === token.id)?.logprob ?? -Infinity;
  const top: TokenAlternative[] = [];
  for (const alt of (token.top ?? []).slice(0, n)) {
    top.push(alternative(await job.bytesCache.bytesOf(alt, anchorId, lookup, job.signal), alt.logprob));
  }
  return { ...alternative(bytes, own), top };
}

function toFinish(f: EngineFinish): FinishReason {
  switch (f) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
  }
}
