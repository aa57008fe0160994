import type { Response } from 'express';
import type { ModelServer, SamplingParams, ServerInfo } from '../backends/types.js';
import type { TokenBytesCache } from '../cache/token-bytes-cache.js';
import { DsdError } from '../errors.js';
import type { AcceptanceRule } from '../speculative/acceptance.js';
import { runSpeculation, type DraftPort, type EngineFinish, type TargetPort } from '../speculative/engine.js';
import { seededRng } from '../speculative/sampling.js';
import { emptyStats } from '../speculative/stats.js';
import { TextAssembler } from '../speculative/text-assembler.js';
import type { GeneratedToken } from '../speculative/types.js';
import { fixedWindow } from '../speculative/window.js';
import type { DsdContext } from './context.js';
import { OpenAiResponseBuilder, summarize, summaryHeaders, usageBody, type FinishReason } from './openai-output.js';
import { alternative, logprobsBody, type TokenAlternative, type TokenLogprobEntry } from './logprobs-output.js';
import { buildPromptIds } from './prompt-builder.js';
import type { GenerationRequest } from './request-types.js';
import { SseWriter } from './sse-writer.js';

/** One speculative request: the client's request and the two servers chosen for it. */
export interface SpeculativeJob {
  ctx: DsdContext;
  request: GenerationRequest;
  target: { server: ModelServer; info: ServerInfo };
  draft: { server: ModelServer; info: ServerInfo };
  window: number;
  bytesCache: TokenBytesCache;
  res: Response;
  signal: AbortSignal;
}

/** The rule used for a request, and how it is described to the client. */
function chooseRule(job: SpeculativeJob): { rule: AcceptanceRule; label: string } {
  if (job.request.temperature === 0) return { rule: 'greedy', label: 'greedy' };
  if (job.ctx.config.speculation.acceptance === 'sample-match') return { rule: 'sample-match', label: 'sample-match' };
  const n = job.ctx.config.speculation.topLogprobs;
  const exact = job.request.topK > 0 && job.request.topK <= n;
  return { rule: 'rejection', label: exact ? 'rejection' : `rejection (approximate: top-${n} probabilities)` };
}

function ports(job: SpeculativeJob, rule: AcceptanceRule): { draft: DraftPort; target: TargetPort } {
  const r = job.request;
  const sampling: SamplingParams = { temperature: r.temperature, topP: r.topP, topK: r.topK, minP: r.minP };
  const rejection = rule === 'rejection';
  const topN = rejection ? job.ctx.config.speculation.topLogprobs : 1;
  // Client logprobs come from the target's verification results, never from the draft.
  const targetTopN = Math.max(topN, r.logprobs ?? 0);
  // Matching rules accept a draft token with probability p(token): proposing the draft's argmax
  // maximises that, so the draft decodes greedily unless rejection sampling needs its q.
  const draftSampling: SamplingParams = rejection ? sampling : { temperature: 0, topP: 1, topK: 0, minP: 0 };
  const observe = (tokens: GeneratedToken[]) => {
    for (const t of tokens) job.bytesCache.observe(t);
    return tokens;
  };
  return {
    draft: {
      propose: async (ctx, k, signal) => observe(await job.draft.server.propose({ promptIds: ctx, maxTokens: k, sampling: draftSampling, topN, postSamplingProbs: rejection, signal })),
    },
    target: {
      score: async (prompts, signal) => observe((await job.target.server.score({ prompts, sampling, topN: targetTopN, postSamplingProbs: rejection, signal })).map((s) => s.token)),
      generate: (ctx, maxTokens, signal) => job.target.server.generate({ promptIds: ctx, maxTokens, sampling, topN: Math.max(1, r.logprobs ?? 0), postSamplingProbs: false, signal }),
    },
  };
}

/** Serves a request with speculative rounds, streaming each round's committed text. */
export async function serveSpeculative(job: SpeculativeJob): Promise<void> {
  const { request, target, signal, ctx } = job;
  const promptIds = await buildPromptIds(request.input, target.server, signal);
  const room = target.info.contextTokens - promptIds.length;
  if (room <= 0) {
    throw new DsdError('invalid_request', `the prompt is ${promptIds.length} tokens; the model's context is ${target.info.contextTokens}`, { param: request.route === 'chat' ? 'messages' : 'prompt' });
  }
  const { rule, label } = chooseRule(job);
  const stopIds = new Set(request.stopTokenIds);
  const eosId = target.info.eosId;
  const isEnd = (t: GeneratedToken) => t.endOfGeneration === true || t.id === eosId || stopIds.has(t.id);
  const vocab = target.info.vocabSize ?? job.draft.info.vocabSize;
  const stats = emptyStats();
  const { draft, target: targetPort } = ports(job, rule);
  const run = runSpeculation({
    prompt: promptIds,
    draft,
    target: targetPort,
    rule,
    window: fixedWindow(job.window),
    maxTokens: Math.min(request.maxTokens ?? room, room),
    contextTokens: target.info.contextTokens,
    maxPositions: target.info.parallelSlots,
    isEnd,
    isValidDraftToken: (id) => Number.isInteger(id) && id >= 0 && (vocab === undefined || id < vocab),
    rng: seededRng(Math.floor(Math.random() * 2 ** 32)),
    now: () => performance.now(),
    signal,
    stats,
    onDraftFailure: (reason) => {
      ctx.counters.draftFallbacks += 1;
      ctx.upstreams.draftFailed(job.draft.server.baseUrl);
      ctx.logger.warn('draft failed; continuing target-only', { reason, draft: job.draft.server.baseUrl });
    },
  });
  ctx.counters.speculative += 1;

  const builder = new OpenAiResponseBuilder(request.route, request.model);
  const writer = request.stream ? new SseWriter(job.res) : undefined;
  // The role chunk waits for the first round, so a target that fails at once still gets a status.
  let roleSent = false;
  const send = async (chunk: unknown) => {
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
    const summary = summarize(stats, label);
    const usage = usageBody(promptIds.length, completionTokens, summary);
    ctx.logger.debug('speculative request done', { ...summary, completionTokens, finish });
    if (writer === undefined) {
      const logprobs = request.logprobs === undefined ? null : logprobsBody(request.route, allLogprobs, 0);
      job.res.set(summaryHeaders(summary)).json(builder.complete(text, finish, usage, logprobs));
      return;
    }
    await send(builder.chunk(tail, finish));
    if (request.includeUsage) await send(builder.usageChunk(usage));
    await writer.done();
  } catch (err) {
    await run.return({ finish: 'stop', stats }).catch(() => undefined);
    if (writer === undefined || !writer.hasStarted) throw err;
    await writer.fail(err);
  }
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
