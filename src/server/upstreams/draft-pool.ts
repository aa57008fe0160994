import type { ConnectOptions } from '../../backends/detect.js';
import { vocabularyMismatch } from '../../backends/vocabulary-check.js';
import { SlotAllocator } from '../../cache/slot-allocator.js';
import type { DsdConfig } from '../../config/types.js';
import type { Logger } from '../../logger.js';
import { AdaptiveWindow } from '../../speculative/adaptive-window.js';
import { PairEstimates, type PairSnapshot } from '../../speculative/estimates.js';
import { rendezvousRank } from './affinity.js';
import { type BreakerState, CircuitBreaker } from './circuit-breaker.js';
import type { ConnectedServer } from './connected-server.js';
import { LazyServer } from './lazy-server.js';

/** Whether a draft was checked against the target's vocabulary. */
type VocabularyState = { kind: 'unchecked' } | { kind: 'ok' } | { kind: 'mismatch'; reason: string };

/** One draft of the pool and what dsd knows about it. */
export interface PoolMember {
  readonly url: string;
  readonly estimates: PairEstimates;
  /** Conversation → slot on this draft (created when its slot count is known). */
  slots: SlotAllocator | undefined;
  /** Requests using this draft right now. */
  inFlight: number;
  /** Draft calls on it right now, every request's: at its slot count, one more would queue. */
  drafting: number;
  readonly breaker: CircuitBreaker;
}

interface MemberState extends PoolMember {
  lazy: LazyServer;
  vocabulary: VocabularyState;
  lastRound?: LastRound;
}

/** The last round of a draft: its window, draft-ahead depth, the planner's reason, when (epoch ms). */
export interface LastRound {
  k: number;
  depth: number;
  reason: string;
  at: number;
}

/** A draft as /dashboard shows it. */
export interface PairState {
  url: string;
  state: BreakerState;
  inFlight: number;
  vocabulary: string;
  estimates: PairEstimates;
  lastRound: LastRound | undefined;
}

/** A draft assigned to a request. */
export interface AssignedDraft {
  member: PoolMember;
  draft: ConnectedServer;
}

/**
 * The drafts of one dsd instance. A request (and a conversation, by prefix hash, so the draft's
 * KV cache is reused) is assigned the draft that is healthy, shares the target's vocabulary and
 * is predicted fastest from its measured latency and acceptance; busy drafts are weighed down so
 * load spreads. Each draft has a circuit breaker with half-open probing; a draft that comes back
 * is re-checked against the target's vocabulary before it is trusted.
 */
export class DraftPool {
  private readonly members: MemberState[];

  constructor(
    private readonly config: DsdConfig,
    private readonly logger: Logger,
    private readonly target: (signal: AbortSignal) => Promise<ConnectedServer>,
    now: () => number = () => performance.now(),
    http: ConnectOptions['http'] = {},
  ) {
    this.members = config.draft.urls.map((url) => ({
      url,
      lazy: new LazyServer(url, 'draft', config.draft, logger, http),
      vocabulary: { kind: 'unchecked' },
      estimates: new PairEstimates(),
      slots: undefined,
      inFlight: 0,
      drafting: 0,
      breaker: new CircuitBreaker({
        failureThreshold: 2,
        cooldownMs: config.speculation.draftCooldownMs,
        maxCooldownMs: 60_000,
        now,
      }),
    }));
  }

  /** Number of drafts configured. */
  get size(): number {
    return this.members.length;
  }

  /** Breaker state of every draft, for /ready. */
  /** The last round a draft took part in, for /dashboard (the window and depth the planner chose). */
  noteRound(url: string, round: { k: number; depth: number; reason: string }): void {
    const member = this.members.find((m) => m.url === url);
    if (member !== undefined) member.lastRound = { ...round, at: Date.now() };
  }

  /** Each draft's estimates as JSON, by URL, for other worker processes. */
  estimatesSnapshot(): Record<string, PairSnapshot> {
    return Object.fromEntries(this.members.map((m) => [m.url, m.estimates.snapshot()]));
  }

  /** Adopts other workers' estimates where they know clearly more; returns the drafts adopted. */
  adoptEstimates(snapshots: Record<string, PairSnapshot>): string[] {
    return this.members
      .filter((m) => snapshots[m.url] !== undefined && m.estimates.adopt(snapshots[m.url]!))
      .map((m) => m.url);
  }

  /** Every draft with its pair estimates and whether it shares the target's vocabulary (for /dashboard). */
  pairs(): PairState[] {
    return this.members.map((m) => ({
      url: m.url,
      state: m.breaker.state,
      inFlight: m.inFlight,
      vocabulary: m.vocabulary.kind,
      estimates: m.estimates,
      lastRound: m.lastRound,
    }));
  }

  states(): { url: string; state: BreakerState; inFlight: number }[] {
    return this.members.map((m) => ({ url: m.url, state: m.breaker.state, inFlight: m.inFlight }));
  }

  /** Assigns a draft (or none: the request then runs on the target alone). Call release() after. */
  async acquire(
    affinityKey: string,
    exclude: ReadonlySet<string>,
    signal: AbortSignal,
  ): Promise<AssignedDraft | undefined> {
    for (const member of this.ranked(affinityKey, exclude)) {
      if (!member.breaker.tryAcquire()) continue;
      try {
        const draft = await member.lazy.get(signal);
        if (member.vocabulary.kind === 'unchecked') await this.checkVocabulary(member, draft, signal);
        if (member.vocabulary.kind !== 'ok') continue;
        member.slots ??= new SlotAllocator(draft.info.parallelSlots);
        member.inFlight += 1;
        return { member, draft };
      } catch (err) {
        if (signal.aborted) throw err;
        this.failed(member, `unreachable: ${(err as Error).message}`);
      }
    }
    return undefined;
  }

  /** Ends a request's use of a draft; `ok` when the draft did not fail during it. */
  release(member: PoolMember, ok: boolean): void {
    const m = member as MemberState;
    m.inFlight = Math.max(0, m.inFlight - 1);
    if (ok && m.breaker.succeeded()) this.logger.info('draft back in use', { draft: m.url });
  }

  /** Records a draft failure: its breaker counts it, and its vocabulary is checked again when it answers. */
  failed(member: PoolMember, reason: string): void {
    const m = member as MemberState;
    m.breaker.failed();
    if (m.vocabulary.kind === 'ok') m.vocabulary = { kind: 'unchecked' };
    this.logger.warn('draft failed', { draft: m.url, reason, breaker: m.breaker.state });
  }

  /** Candidates in order: the conversation's own draft first unless it is much slower or busier. */
  private ranked(affinityKey: string, exclude: ReadonlySet<string>): MemberState[] {
    const usable = this.members.filter(
      (m) => !exclude.has(m.url) && m.breaker.state !== 'open' && m.vocabulary.kind !== 'mismatch',
    );
    const predicted = new Map(usable.map((m) => [m, this.predictedMsPerToken(m)]));
    const known = [...predicted.values()].filter((v): v is number => v !== undefined);
    // A draft not measured yet ranks as the best measured one: new conversations, spread by the
    // hash, explore it without pulling existing conversations off their drafts.
    const fallback = known.length > 0 ? Math.min(...known) : 1;
    const cost = (m: MemberState) => (predicted.get(m) ?? fallback) * (1 + 0.5 * m.inFlight);
    const byCost = [...usable].sort((a, b) => cost(a) - cost(b));
    const byAffinity = [...usable].sort(
      (a, b) => rendezvousRank(affinityKey, b.url) - rendezvousRank(affinityKey, a.url),
    );
    const preferred = byAffinity[0];
    const best = byCost[0];
    if (preferred === undefined || best === undefined) return [];
    const keep = cost(preferred) <= 1.5 * cost(best) && preferred.inFlight <= best.inFlight + 2;
    return keep ? [preferred, ...byCost.filter((m) => m !== preferred)] : byCost;
  }

  /** Predicted ms/token with this draft, or undefined before it was measured. */
  private predictedMsPerToken(m: MemberState): number | undefined {
    const s = this.config.speculation;
    const window = new AdaptiveWindow(m.estimates, {
      min: s.windowMin,
      max: s.windowMax,
      initialK: 4,
      margin: 0,
      explore: 0,
      draftAhead: s.draftAhead,
      aheadDepth: typeof s.aheadDepth === 'number' ? s.aheadDepth : 0,
      rng: Math.random,
    });
    return window.best()?.msPerToken;
  }

  private async checkVocabulary(member: MemberState, draft: ConnectedServer, signal: AbortSignal): Promise<void> {
    const target = await this.target(signal);
    const reason = await vocabularyMismatch(target, draft, signal);
    member.vocabulary = reason === undefined ? { kind: 'ok' } : { kind: 'mismatch', reason };
    if (reason !== undefined) {
      this.logger.error('draft does not share the target vocabulary; it will not be used', {
        draft: member.url,
        target: target.server.baseUrl,
        reason,
      });
    }
  }

  /**
   * Startup check of every draft: a vocabulary mismatch is an error naming both servers; an
   * unreachable draft is only reported (requests use the others or the target alone meanwhile).
   */
  async verifyAll(signal: AbortSignal): Promise<{ unreachable: string[]; mismatch: string | undefined }> {
    const unreachable: string[] = [];
    for (const member of this.members) {
      let draft: ConnectedServer;
      try {
        draft = await member.lazy.get(signal);
      } catch {
        unreachable.push(member.url);
        continue;
      }
      await this.checkVocabulary(member, draft, signal);
      if (member.vocabulary.kind === 'mismatch') {
        const target = await this.target(signal);
        return {
          unreachable,
          mismatch:
            `the draft at ${member.url} and the target at ${target.server.baseUrl} do not share a ` +
            `vocabulary: ${member.vocabulary.reason}`,
        };
      }
    }
    return { unreachable, mismatch: undefined };
  }

  /** The drafts connected so far. */
  connected(): ConnectedServer[] {
    return this.members.map((m) => m.lazy.current).filter((c): c is ConnectedServer => c !== undefined);
  }

  /** Health of every draft. */
  health(signal: AbortSignal): Promise<boolean[]> {
    return Promise.all(this.members.map((m) => m.lazy.healthy(signal)));
  }

  /** Closes every draft connection. */
  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.lazy.close()));
  }
}
