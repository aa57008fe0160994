import type { ModelServer, SamplingParams } from '../../backends/types.js';
import { VerifierServer } from '../../backends/verifier/client.js';
import type { BackendKind } from '../../config/types.js';
import type { Logger } from '../../logger.js';
import type { AcceptanceRule } from '../../speculative/acceptance.js';
import type { DraftSlot, EngineOptions, TargetPort } from '../../speculative/engine.js';
import {
  adaptivePlanner,
  fixedPlanner,
  PROBE_EVERY_TOKENS,
  type SpeculationPlanner,
} from '../../speculative/planner.js';
import { seededRng } from '../../speculative/sampling.js';
import type { SpeculationStats } from '../../speculative/stats.js';
import type { GeneratedToken } from '../../speculative/types.js';
import { clampWindow } from '../../speculative/window.js';
import { recordChildSpan, tracing } from '../../tracing.js';
import type { DsdContext } from '../context.js';
import type { GenerationRequest } from '../request-types.js';
import { affinityKey } from '../upstreams/affinity.js';
import type { ConnectedServer } from '../upstreams/connected-server.js';
import type { AssignedDraft, PoolMember } from '../upstreams/draft-pool.js';
import { FailoverTarget, type ReplicaPort } from './failover-target.js';
import { upstreamIsolation } from './passthrough.js';
import type { Tokenize } from './racing-tokenizer.js';

/** A request's speculative set-up: engine options, how the rule is described, and its drafts to release. */
export interface SpeculativeSession {
  /** Engine options for the prompt, once it is built. */
  engine(promptIds: number[]): EngineOptions;
  ruleLabel: string;
  /** The assigned draft's /tokenize: it shares the target's vocabulary and is near (racing tokenizer). */
  draftTokenize: Tokenize;
  /** Releases every draft this request used back to the pool. */
  release(): void;
  /** The target replica serving the generation now (it moves on failover). */
  target(): ModelServer;
}

/** The rule used for a request, and how it is described to the client. */
function chooseRule(ctx: DsdContext, request: GenerationRequest): { rule: AcceptanceRule; label: string } {
  if (request.temperature === 0) return { rule: 'greedy', label: 'greedy' };
  if (ctx.config.speculation.acceptance === 'sample-match') return { rule: 'sample-match', label: 'sample-match' };
  const n = ctx.config.speculation.topLogprobs;
  const exact = request.topK > 0 && request.topK <= n;
  return { rule: 'rejection', label: exact ? 'rejection' : `rejection (approximate: top-${n} probabilities)` };
}

/** DSD_DRAFT_AHEAD_DEPTH for a target: `auto` sends rounds early only to a batching vLLM server. */
export function aheadDepthFor(setting: number | 'auto', targetKind: BackendKind): number {
  // A verifier scores one sequence per session: rounds sent early would only queue behind it.
  return setting === 'auto' ? (targetKind === 'vllm' ? 2 : 0) : setting;
}

function planner(
  ctx: DsdContext,
  request: GenerationRequest,
  member: PoolMember,
  targetKind: BackendKind,
): SpeculationPlanner {
  const s = ctx.config.speculation;
  const aheadDepth = aheadDepthFor(s.aheadDepth, targetKind);
  const bounds = { min: Math.max(1, s.windowMin), max: s.windowMax };
  if (request.speculation.window !== undefined)
    return fixedPlanner(clampWindow(request.speculation.window, bounds), member.estimates);
  if (s.window !== 'auto') return fixedPlanner(s.window, member.estimates);
  return adaptivePlanner(member.estimates, {
    ...bounds,
    initialK: Math.min(bounds.max, Math.max(bounds.min, 4)),
    margin: 0.05,
    explore: 0.1,
    draftAhead: s.draftAhead,
    aheadDepth,
    rng: seededRng(Math.floor(Math.random() * 2 ** 32)),
    probeEveryTokens: PROBE_EVERY_TOKENS,
    // This edge's other generations, spread over the target's replicas: the target's load as far
    // as the edge sees it (other edges' generations are not counted).
    peers: () => Math.max(0, ctx.admission.inFlight - 1) / Math.max(1, ctx.upstreams.targets.size),
  });
}

/** How many requests in a row may go straight to the target before one refreshes the estimates. */
const REFRESH_EVERY = 8;

/** Everything a session's ports need to know about the request's sampling. */
interface SamplingSetup {
  rule: AcceptanceRule;
  label: string;
  rejection: boolean;
  sampling: SamplingParams;
  /** Matching rules accept a draft token with probability p(token): proposing the draft's argmax
   *  maximises that, so the draft decodes greedily unless rejection sampling needs its q. */
  draftSampling: SamplingParams;
  topN: number;
  /** Client logprobs come from the target's verification results, never from the draft. */
  targetTopN: number;
}

function samplingSetup(ctx: DsdContext, request: GenerationRequest, targetKind: BackendKind): SamplingSetup {
  const { rule, label } = chooseRule(ctx, request);
  const rejection = rule === 'rejection';
  const sampling: SamplingParams = {
    temperature: request.temperature,
    topP: request.topP,
    topK: request.topK,
    minP: request.minP,
  };
  const topN = rejection ? ctx.config.speculation.topLogprobs : 1;
  return {
    rule,
    label,
    rejection,
    sampling,
    draftSampling: rejection ? sampling : { temperature: 0, topP: 1, topK: 0, minP: 0 },
    topN,
    // llama-server needs one entry per token to tell its bytes; a verifier computes
    // probabilities only when a rule or the client needs them (they cost a full vocabulary pass).
    targetTopN:
      targetKind === 'verifier' && !rejection ? (request.logprobs ?? 0) : Math.max(topN, request.logprobs ?? 0),
  };
}

/** Options of openSession. */
export interface SessionOptions {
  ctx: DsdContext;
  request: GenerationRequest;
  target: ConnectedServer;
  stats: SpeculationStats;
  signal: AbortSignal;
  logger: Logger;
  requestId?: string | undefined;
}

/** Round trip past which the verifier's stream beats edge-driven rounds (bench:verifier, docs/verifier.md). */
const STREAM_RTT_MS = 5;

/** Generations open on one verifier from which its stream beats rounds (bench:verifier, docs/verifier.md). */
const STREAM_SESSIONS = 3;

/**
 * Whether a generation uses the verifier's stream: at a small round trip and alone on the verifier
 * it would wait less for a proposal than a decode step's fixed cost, and rounds with draft-ahead do
 * better. Beyond that round trip, or with several generations sharing the target's batched steps
 * (where a generation waiting on a verdict and a draft misses steps the others take), the target
 * that never waits is faster.
 */
function streamThroughVerifier(ctx: DsdContext, verifier: VerifierServer): boolean {
  const mode = ctx.config.speculation.verifierMode;
  if (mode !== 'auto') return mode === 'stream';
  const rtt = verifier.linkRttMs;
  // The generations admitted on this edge count too: a burst decides before any has opened its
  // session, and a generation that took rounds keeps them (16 at once: 3 took rounds and split
  // the verifier's batch, 9.9 steps an evaluation against 12.6 all streaming; bench:under-load).
  const others = Math.max(verifier.openSessions, ctx.admission.inFlight - 1);
  return (rtt !== undefined && rtt >= STREAM_RTT_MS) || others >= STREAM_SESSIONS;
}

/** The target on one replica as the engine sees it; counts what verification recomputed. */
function replicaPort(
  o: SessionOptions,
  setup: SamplingSetup,
  observe: (t: GeneratedToken[]) => GeneratedToken[],
  target: ConnectedServer,
): TargetPort & { close?: () => void } {
  const { request } = o;
  if (target.server instanceof VerifierServer) {
    // One session on the verifier for the whole generation: it keeps the context, deltas cross.
    const session = target.server.openSession({
      sampling: setup.sampling,
      topN: setup.targetTopN,
      // In auto mode every session can stream: one that starts with rounds goes over when
      // generations join it on the verifier (streamNow below).
      assisted: o.ctx.config.speculation.verifierMode !== 'rounds',
      scope: request.cacheScope,
    });
    const verifier = target.server;
    return {
      score: async (prompts, s) => observe(await session.score(prompts, s)),
      generate: (c, maxTokens, s) => session.generate(c, maxTokens, s),
      streamNow: () => streamThroughVerifier(o.ctx, verifier),
      ...(session.assist === undefined
        ? {}
        : {
            assist: (c: readonly number[], maxTokens: number, s: AbortSignal) => {
              const stream = session.assist!(c, maxTokens, s);
              // Everything the stream tells (its lead and pace above all: without them every
              // proposal is drafted too short to outlast the link) plus the observed chunks.
              return {
                ...stream,
                chunks: (async function* () {
                  for await (const chunk of stream.chunks) {
                    observe(chunk.tokens);
                    yield chunk;
                  }
                })(),
              };
            },
          }),
      close: () => session.close(),
    };
  }
  const salt = isolation(o);
  return {
    score: async (prompts, s) => {
      const scored = await target.server.score({
        prompts,
        sampling: setup.sampling,
        topN: setup.targetTopN,
        postSamplingProbs: setup.rejection,
        signal: s,
        ...salt,
      });
      for (const p of scored) {
        o.stats.verifyPromptComputed += p.computedPromptTokens ?? 0;
        o.stats.verifyPromptCached += p.cachedPromptTokens ?? 0;
      }
      return observe(scored.map((p) => p.token));
    },
    generate: (c, maxTokens, s) =>
      target.server.generate({
        promptIds: c,
        maxTokens,
        sampling: setup.sampling,
        topN: Math.max(1, request.logprobs ?? 0),
        postSamplingProbs: false,
        signal: s,
        ...salt,
      }),
  };
}

/**
 * The target as the engine sees it: the request's replica, and when it dies or its link breaks
 * mid-generation, the next replica in the conversation's ranking, carried on from the committed
 * context (FailoverTarget). The replica that failed is marked down in the pool.
 */
function targetPortFor(
  o: SessionOptions,
  setup: SamplingSetup,
  observe: (t: GeneratedToken[]) => GeneratedToken[],
): FailoverTarget {
  const { ctx, request, target } = o;
  const keyOf = () => affinityKey(request.input, request.cacheScope);
  const on = (c: ConnectedServer): ReplicaPort => ({
    url: c.server.baseUrl,
    server: c.server,
    port: replicaPort(o, setup, observe, c),
  });
  return new FailoverTarget({
    first: on(target),
    next: async (exclude, signal) => {
      if (!ctx.config.targetFailover || exclude.size >= ctx.upstreams.targets.size) return undefined;
      const c = await ctx.upstreams.target(signal, keyOf, exclude).catch(() => undefined);
      return c === undefined ? undefined : on(c);
    },
    onFailover: (from, to, err) => {
      ctx.upstreams.targets.failed(from);
      ctx.metrics.failovers.inc({ from });
      o.logger.warn('target replica lost mid-generation; carrying on from the committed context', {
        from,
        to,
        err: (err as Error).message,
      });
    },
  });
}

/** The request's cache isolation on the target and drafts (see upstreamIsolation). */
function isolation(o: SessionOptions): { cacheSalt?: string; noPromptCache?: boolean } {
  return upstreamIsolation(o.ctx.config.cacheScope, o.request.cacheScope);
}

/** Turns pool assignments into engine draft slots, remembering them for release. */
class DraftSlots {
  readonly used: { member: PoolMember; ok: boolean }[] = [];

  constructor(
    private readonly o: SessionOptions,
    private readonly setup: SamplingSetup,
    private readonly key: string,
    private readonly observe: (t: GeneratedToken[]) => GeneratedToken[],
  ) {}

  slot(a: AssignedDraft, chosen = planner(this.o.ctx, this.o.request, a.member, this.o.target.server.kind)): DraftSlot {
    this.used.push({ member: a.member, ok: true });
    const { setup } = this;
    // Conversations keep their draft slot, so the draft's KV cache holds their context.
    const pinned =
      this.o.ctx.config.draftSlotPinning && a.draft.server.kind === 'llamacpp' && a.member.slots !== undefined
        ? { slot: a.member.slots.slotFor(this.key) }
        : {};
    return {
      name: a.member.url,
      planner: chosen,
      port: {
        propose: async (c, k, s, alternatives = 0) => {
          a.member.drafting += 1;
          try {
            return this.observe(
              await a.draft.server.propose({
                promptIds: c,
                maxTokens: k,
                sampling: setup.draftSampling,
                topN: Math.max(setup.topN, alternatives),
                postSamplingProbs: setup.rejection,
                signal: s,
                ...pinned,
                ...isolation(this.o),
              }),
            );
          } finally {
            a.member.drafting -= 1;
          }
        },
        saturated: () => a.member.drafting >= (a.member.slots?.slots ?? Number.POSITIVE_INFINITY),
      },
    };
  }

  /** Another pool member after a failure (never one this request already used). */
  async replace(): Promise<DraftSlot | undefined> {
    const next = await this.o.ctx.upstreams.drafts.acquire(
      this.key,
      new Set(this.used.map((u) => u.member.url)),
      this.o.signal,
    );
    return next === undefined ? undefined : this.slot(next);
  }

  failed(name: string, reason: string): void {
    const entry = this.used.find((u) => u.member.url === name);
    if (entry === undefined) return;
    entry.ok = false;
    this.o.ctx.upstreams.drafts.failed(entry.member, reason);
  }

  release(): void {
    for (const u of this.used) this.o.ctx.upstreams.drafts.release(u.member, u.ok);
  }
}

/** After every round: the pool notes it (for /dashboard); debug logging, the round trace and a span when on. */
function roundObserver(o: SessionOptions, targetUrl: string): Pick<EngineOptions, 'onRound'> {
  const trace = o.ctx.trace;
  const spans = tracing();
  const requestId = o.requestId;
  return {
    onRound: (round) => {
      o.ctx.upstreams.drafts.noteRound(round.draft, round);
      if (o.logger.debugEnabled) o.logger.debug('round', round);
      if (spans)
        recordChildSpan('dsd.round', round.draftMs + round.verifyMs, {
          'dsd.round.k': round.k,
          'dsd.round.accepted': round.accepted,
          'dsd.round.committed': round.committed,
          'dsd.round.draft_ms': round.draftMs,
          'dsd.round.verify_ms': round.verifyMs,
          'dsd.round.depth': round.depth,
          'dsd.draft': round.draft,
          'dsd.round.reason': round.reason,
        });
      trace?.write({
        time: new Date().toISOString(),
        requestId,
        target: targetUrl,
        ...round,
        wallMs: round.draftMs + round.verifyMs,
      });
    },
  };
}

/**
 * Sets up a speculative request: assigns a draft from the pool and wires the ports so that a
 * failing draft is replaced by another pool member within the same request. Undefined when the
 * request should go straight to the target: no draft is available, or the pair's planner already
 * knows that the target alone is faster (and no refresh is due).
 */
export async function openSession(o: SessionOptions): Promise<SpeculativeSession | undefined> {
  const { ctx, request, target, signal } = o;
  const key = affinityKey(request.input, request.cacheScope);
  const first = await ctx.upstreams.drafts.acquire(key, new Set(), signal);
  // With replicas to fail over to, the target alone also runs through the engine: a passthrough
  // stream cut by a dying replica could only end in an error, a token stream goes on elsewhere.
  const failover = ctx.config.targetFailover && ctx.upstreams.targets.size > 1;
  const alone = () => (target.server.passthrough === false || failover ? targetOnlySession(o) : undefined);
  if (first === undefined) return alone();
  const firstPlanner = planner(ctx, request, first.member, target.server.kind);
  const opening = firstPlanner.decide();
  // While the acceptance estimate is thin, or the pair is a close call (fresh shadow acceptance
  // could flip it), every other request refreshes it; otherwise every 8th. After a surprising
  // probe, the very next request refreshes (and probes again). A refresh costs little: the prompt
  // is tokenized on the draft, and the target streams alone through the engine as it would direct.
  const estimates = first.member.estimates;
  const closeCall = opening.closeCall === true;
  const refreshEvery = estimates.recheckDue ? 1 : estimates.acceptance.weight < 20 || closeCall ? 2 : REFRESH_EVERY;
  // A due probe waits for the next refresh request too: it is a round trip spent to measure.
  const settled = opening.kind === 'target-only' ? opening.settled : opening.probe === true;
  // The planner prices rounds, each a round trip; the verifier's stream pays none and verifies a
  // proposal only where it lines up, so a verdict of "target alone" does not apply to it.
  // Only across a link: a stream chosen because many generations share the verifier stays gated.
  const streams =
    target.server instanceof VerifierServer &&
    streamThroughVerifier(ctx, target.server) &&
    (ctx.config.speculation.verifierMode === 'stream' || (target.server.linkRttMs ?? 0) >= STREAM_RTT_MS);
  if (settled && !streams && !estimates.shouldRefresh(refreshEvery)) {
    ctx.upstreams.drafts.release(first.member, true);
    return alone();
  }
  const leaveTarget = ctx.upstreams.enterSpeculation(target.server.baseUrl);
  const setup = samplingSetup(ctx, request, target.server.kind);
  const slots = new DraftSlots(o, setup, key, observer(ctx));
  const firstDraft = slots.slot(first, firstPlanner);
  const targetPort = targetPortFor(o, setup, observer(ctx));
  const engine = engineFactory(o, setup, targetPort, firstDraft, slots, first.draft.info.vocabSize);
  return {
    engine,
    ruleLabel: setup.label,
    draftTokenize: (text, addSpecial, s) => first.draft.server.tokenize(text, addSpecial, s),
    target: () => targetPort.server,
    release: () => {
      leaveTarget();
      slots.release();
      targetPort.close();
    },
  };
}

/** Teaches the token-bytes cache every token a server described. */
function observer(ctx: DsdContext): (tokens: GeneratedToken[]) => GeneratedToken[] {
  return (tokens) => {
    for (const t of tokens) ctx.bytesCache.observe(t);
    return tokens;
  };
}

/** Engine options for a prompt: the first draft (or none) and the request's rule and limits. */
function engineFactory(
  o: SessionOptions,
  setup: SamplingSetup,
  targetPort: TargetPort,
  firstDraft: DraftSlot | undefined,
  slots: DraftSlots | undefined,
  draftVocab: number | undefined,
): (promptIds: number[]) => EngineOptions {
  const { ctx, request, target, signal } = o;
  const stopIds = new Set(request.stopTokenIds);
  const vocab = target.info.vocabSize ?? draftVocab;
  return (promptIds) => ({
    prompt: promptIds,
    draft: firstDraft,
    replaceDraft: async () => slots?.replace(),
    target: targetPort,
    rule: setup.rule,
    maxTokens: Math.min(request.maxTokens ?? Infinity, target.info.contextTokens - promptIds.length),
    contextTokens: target.info.contextTokens,
    // Each request keeps k+1 of the target's slots busy; sharing the slots among the requests in
    // flight keeps them from evicting each other's KV caches (bench:multi-turn, README).
    maxPositions: () =>
      ctx.config.targetSlotSharing && target.server.kind !== 'verifier'
        ? Math.max(
            1,
            Math.floor(target.info.parallelSlots / Math.max(1, ctx.upstreams.speculativeOn(target.server.baseUrl))),
          )
        : target.info.parallelSlots,
    draftAhead: ctx.config.speculation.draftAhead,
    // Trees are the verifier's: its stream takes them, and its rounds' branches beside draft-ahead
    // paid (1.035-1.08x at 0 ms). Beside a fast HTTP target they cost the edge more draft requests
    // than they saved (bench:round-cpu, 4 clients: 451-506 against 507-514 tokens/s).
    treeBranches: target.server.kind === 'verifier' ? ctx.config.speculation.treeBranches : 0,
    windowMax: ctx.config.speculation.windowMax,
    aheadDepth: aheadDepthFor(ctx.config.speculation.aheadDepth, target.server.kind),
    isEnd: (t) => t.endOfGeneration === true || t.id === target.info.eosId || stopIds.has(t.id),
    isValidDraftToken: (id) => Number.isInteger(id) && id >= 0 && (vocab === undefined || id < vocab),
    rng: seededRng(Math.floor(Math.random() * 2 ** 32)),
    now: () => performance.now(),
    signal,
    stats: o.stats,
    ...roundObserver(o, target.server.baseUrl),
    onDraftFailure: (failed, reason) => {
      ctx.counters.draftFallbacks += 1;
      ctx.metrics.fallbacks.inc({ reason: 'draft_failed' });
      slots?.failed(failed.name, reason);
    },
  });
}

/**
 * A session with no draft, for a target that cannot take requests passed through (the verifier's
 * own engine): the target generates alone through the engine, with the same outputs and stops.
 */
function targetOnlySession(o: SessionOptions): SpeculativeSession {
  const setup = samplingSetup(o.ctx, o.request, o.target.server.kind);
  const targetPort = targetPortFor(o, setup, observer(o.ctx));
  return {
    engine: engineFactory(o, setup, targetPort, undefined, undefined, undefined),
    ruleLabel: setup.label,
    draftTokenize: (text, addSpecial, s) => o.target.server.tokenize(text, addSpecial, s),
    target: () => targetPort.server,
    release: () => targetPort.close(),
  };
}
