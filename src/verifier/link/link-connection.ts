import type { RawData, WebSocket } from 'ws';
import { type LinkCodec, type LinkEncoding, linkCodec, payloadBytes } from '../../backends/link/link-codec.js';
import {
  type EdgeFrame,
  type FrameLimits,
  LinkFrameError,
  type VerifierFrame,
  type WireBytes,
  type WireTop,
} from '../../backends/link/protocol.js';
import { decodeAlone, matchVerdict, scoreDrafts } from '../../engine/engine-server.js';
import type { EngineSequence, PositionSampling } from '../../engine/types.js';
import { DsdError } from '../../errors.js';
import { draftsWorthVerifying, streamWindow } from '../../speculative/batch-window.js';
import { PositionAcceptance } from '../../speculative/estimates.js';
import { GenerationAcceptance } from '../../speculative/generation-acceptance.js';
import type { GeneratedToken } from '../../speculative/types.js';
import { type AssistedStep, deliver, type Proposal, serveAssisted } from './assisted-loop.js';
import type { LinkServerOptions, LinkStats } from './types.js';

/** One generation's state on the verifier. */
interface LinkSession {
  /** The context as last scored or generated: what `n` in the edge's frames counts into. */
  ctx: number[];
  sampling: PositionSampling;
  sequence: Promise<EngineSequence>;
  /** Frames of a session run one after another. */
  chain: Promise<void>;
  /** The target-only stream running now, if any, with the newest proposals sent into it. */
  gen: { r: number; abort: AbortController; proposals: Proposal[]; arrived?: (() => void) | undefined } | undefined;
  lastActiveMs: number;
  abort: AbortController;
  /** What the last round committed: the context it scored, then its accepted drafts and bonus. */
  truth: { baseLength: number; tail: number[] } | undefined;
  /** This session's acceptance as verified here, shrunk toward the connection's. */
  acceptance: GenerationAcceptance;
}

/**
 * Whether the context of a round contradicts what the previous round committed (the edge sent
 * it early, betting on a verdict that did not come): then no evaluation is spent on it.
 */
export function refuted(truth: LinkSession['truth'], ctx: readonly number[], kept: number): boolean {
  if (truth === undefined || kept < truth.baseLength) return false;
  const n = Math.min(ctx.length - truth.baseLength, truth.tail.length);
  for (let i = 0; i < n; i++) if (ctx[truth.baseLength + i] !== truth.tail[i]) return true;
  return false;
}

/** The token lists of verifier frames, with logprobs only when the session asked for them. */
function tokenFields(
  tokens: readonly GeneratedToken[],
  topN: number,
): Pick<VerifierFrame & { t: 'tok' }, 'x' | 'l' | 'o'> {
  const x = tokens.map((t) => t.id);
  if (topN <= 0) return { x };
  return {
    x,
    l: tokens.map((t) => t.logprob ?? null),
    o: tokens.map((t): WireTop => (t.top ?? []).map((a) => [a.id, a.logprob])),
  };
}

/**
 * The sessions of one edge connection. Bad frames get a coded `err` frame and change nothing; a
 * session's frames run in order; `stop` acts at once on the stream it names.
 */
export class LinkConnection {
  private readonly sessions = new Map<number, LinkSession>();
  private readonly limits: FrameLimits;
  private readonly idleTimer: NodeJS.Timeout;
  /** This edge's draft acceptance by position, as verified here (one pair per connection, mostly):
   *  each session's own estimate shrinks toward it. */
  private readonly acceptance = new PositionAcceptance(0.98);
  /** Tokens whose bytes this edge was already told. */
  private readonly described = new Set<number>();

  private readonly stats: LinkStats;
  private readonly codec: LinkCodec;

  constructor(
    private readonly ws: WebSocket,
    private readonly o: LinkServerOptions,
    link: { stats: LinkStats; encoding: LinkEncoding },
  ) {
    this.stats = link.stats;
    this.codec = linkCodec(link.encoding);
    const info = o.engine.info;
    this.limits = { vocabSize: info.vocabSize, maxTokens: info.contextTokens, maxDraft: o.maxDraftTokens };
    this.idleTimer = setInterval(() => this.closeIdle(), Math.max(50, o.idleTimeoutMs / 4));
    this.idleTimer.unref();
  }

  receive(data: RawData, isBinary: boolean): void {
    const bytes = Buffer.isBuffer(data)
      ? data
      : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data as ArrayBuffer)]);
    this.stats.bytesIn += bytes.length;
    let frame: EdgeFrame;
    try {
      frame = this.codec.decodeEdge(bytes, isBinary, this.limits);
    } catch (err) {
      return this.badFrame(err instanceof LinkFrameError ? err : new LinkFrameError('bad_frame', String(err)));
    }
    this.route(frame);
  }

  private route(f: EdgeFrame): void {
    if (f.t === 'open') return this.open(f);
    const session = this.sessions.get(f.s);
    if (session === undefined)
      return this.badFrame(new LinkFrameError('unknown_session', `no session ${f.s} on this connection`, f.s));
    session.lastActiveMs = Date.now();
    switch (f.t) {
      case 'stop':
        if (session.gen?.r === f.r) session.gen.abort.abort();
        return;
      case 'prop':
        // Into the running stream at once: the loop must see it between two of its steps.
        if (session.gen?.r !== f.r) return;
        this.stats.continuedDrafts += deliver(
          session.gen,
          { at: f.at, d: f.d, b: f.b, w: f.w, e: f.e },
          this.limits.maxDraft,
        );
        return;
      case 'close':
        return this.closeSession(f.s);
      case 'score':
      case 'gen':
        session.chain = session.chain.then(() => this.run(f.s, session, f));
    }
  }

  /** Set by drain: new sessions are refused, so the edge opens them on another replica. */
  private draining = false;

  /** Sessions open on this connection. */
  get openSessions(): number {
    return this.sessions.size;
  }

  /** Tells the edge the verifier is going away within `ms`; from now on `open` is refused. */
  drain(ms: number): void {
    if (this.draining) return;
    this.draining = true;
    this.send({ t: 'drain', ms });
  }

  private open(f: EdgeFrame & { t: 'open' }): void {
    if (this.draining)
      return this.badFrame(new LinkFrameError('draining', 'this verifier is shutting down; open it elsewhere', f.s));
    if (this.sessions.has(f.s))
      return this.badFrame(new LinkFrameError('session_exists', `session ${f.s} is already open`, f.s));
    if (this.sessions.size >= this.o.maxSessionsPerConnection)
      return this.badFrame(
        new LinkFrameError('session_limit', `at most ${this.o.maxSessionsPerConnection} sessions per edge`, f.s),
      );
    const abort = new AbortController();
    const sequence = this.o.engine.acquire(f.p, abort.signal, f.c ?? '');
    // A session closed before it got its sequence must not leave the rejection unhandled.
    sequence.catch(() => {});
    this.sessions.set(f.s, {
      ctx: [...f.p],
      sampling: { sampling: { ...f.m }, topN: f.n },
      sequence,
      chain: Promise.resolve(),
      gen: undefined,
      lastActiveMs: Date.now(),
      abort,
      truth: undefined,
      acceptance: new GenerationAcceptance(this.acceptance),
    });
    this.stats.sessions += 1;
  }

  private async run(s: number, session: LinkSession, f: EdgeFrame & { t: 'score' | 'gen' }): Promise<void> {
    try {
      const seq = await session.sequence;
      if (f.n > session.ctx.length)
        throw new LinkFrameError('desync', `n ${f.n} is past the ${session.ctx.length} tokens of session ${s}`, s);
      const stale = f.t === 'score' && refuted(session.truth, [...session.ctx.slice(0, f.n), ...f.a], f.n);
      session.ctx.length = f.n;
      for (const id of f.a) session.ctx.push(id);
      if (stale) {
        this.stats.staleRounds += 1;
        return this.send({ t: 'scored', s, r: f.r, x: [], z: 1 });
      }
      session.truth = undefined;
      if (session.ctx.length === 0) throw new LinkFrameError('bad_frame', 'the context is empty', s);
      if (f.t === 'score') await this.score(s, session, seq, f);
      else await this.generate(s, session, seq, f);
    } catch (err) {
      if (!this.sessions.has(s)) return;
      const code =
        err instanceof LinkFrameError ? err.code : contextOverflow(err) ? 'context_overflow' : 'engine_error';
      this.send({ t: 'err', s, r: f.r, code, msg: (err as Error).message ?? String(err) });
    }
  }

  private async score(s: number, session: LinkSession, seq: EngineSequence, f: EdgeFrame & { t: 'score' }) {
    // A shared target verifies only the drafts worth its time; the verdict then has fewer positions.
    const drafts = this.worthVerifying(f.d, session.acceptance);
    const scored = await scoreDrafts(seq, session.ctx, drafts, session.sampling);
    const verdict = matchVerdict(drafts, scored);
    // The engine may have verified fewer still (its batch's shape): those count as declined too.
    const verified = Math.min(drafts.length, scored.length - 1);
    this.stats.unverifiedDraftTokens += drafts.length - verified;
    // Drafts all declined count toward trying this session again; a round sent with none says nothing.
    if (f.d.length > 0) session.acceptance.observe(verified, verdict.accepted);
    session.truth = { baseLength: session.ctx.length, tail: verdict.tokens };
    this.stats.rounds += 1;
    this.stats.draftTokens += verified;
    this.send({ t: 'scored', s, r: f.r, ...tokenFields(scored, session.sampling.topN) });
  }

  /** The leading drafts worth verifying while generations share the target (all of them otherwise). */
  private worthVerifying(d: readonly number[], acceptance: GenerationAcceptance): readonly number[] {
    const j = draftsWorthVerifying(d.length, acceptance, this.o.engine.batchCost());
    this.stats.unverifiedDraftTokens += d.length - j;
    return j === d.length ? d : d.slice(0, j);
  }

  private async generate(s: number, session: LinkSession, seq: EngineSequence, f: EdgeFrame & { t: 'gen' }) {
    const abort = new AbortController();
    const onClose = () => abort.abort();
    session.abort.signal.addEventListener('abort', onClose, { once: true });
    const gen: NonNullable<LinkSession['gen']> = { r: f.r, abort, proposals: [] };
    session.gen = gen;
    try {
      if (f.p === 1) await this.assisted(s, session, seq, f, gen);
      else
        for await (const token of decodeAlone(seq, [...session.ctx], f.k, session.sampling, abort.signal)) {
          session.ctx.push(token.id);
          this.send({ t: 'tok', s, r: f.r, ...tokenFields([token], session.sampling.topN) });
          if (abort.signal.aborted) break;
        }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    } finally {
      session.gen = undefined;
      session.abort.signal.removeEventListener('abort', onClose);
    }
    if (this.sessions.has(s)) this.send({ t: 'end', s, r: f.r });
  }

  private assisted(
    s: number,
    session: LinkSession,
    seq: EngineSequence,
    f: EdgeFrame & { t: 'gen' },
    gen: NonNullable<LinkSession['gen']>,
  ): Promise<void> {
    let told: number | undefined;
    // The window this target would verify at, told the edge when it changes (a byte or two).
    const window = (): { k?: number } => {
      const k = streamWindow(this.limits.maxDraft, session.acceptance, this.o.engine.batchCost());
      if (k === undefined || k === told) return {};
      told = k;
      return { k };
    };
    return serveAssisted({
      seq,
      ctx: session.ctx,
      sampling: session.sampling,
      maxTokens: f.k,
      inbox: gen,
      signal: gen.abort.signal,
      // Shared, a step's fixed part is split among the generations in it: decoding alone in the
      // others' step wastes only this one's share, while waiting misses the step (measured at 16
      // streams: waits for the whole fixed part split the batch, 9.3 steps an evaluation of 16).
      fixedMs: () => {
        const c = this.o.engine.batchCost();
        return c.fixedMs / (1 + c.peers);
      },
      worthVerifying: (d) => this.worthVerifying(d, session.acceptance),
      emit: (tokens, step) => {
        if (step.branch === true) this.stats.branchSteps += 1;
        session.acceptance.observe(step.drafted, step.accepted);
        if (step.drafted > 0) {
          this.stats.rounds += 1;
          this.stats.draftTokens += step.drafted;
        }
        this.send({
          t: 'tok',
          s,
          r: f.r,
          ...tokenFields(tokens, session.sampling.topN),
          ...proposalUse(step),
          ...window(),
        });
      },
    });
  }

  private closeSession(s: number, reason?: LinkFrameError): void {
    const session = this.sessions.get(s);
    if (session === undefined) return;
    this.sessions.delete(s);
    this.stats.sessions -= 1;
    session.abort.abort();
    if (reason !== undefined) this.send({ t: 'err', s, code: reason.code, msg: reason.message });
    // The sequence goes back once the session's last frame is done with it.
    void session.chain.then(async () => (await session.sequence.catch(() => undefined))?.release());
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const [s, session] of this.sessions)
      if (session.gen === undefined && now - session.lastActiveMs > this.o.idleTimeoutMs)
        this.closeSession(s, new LinkFrameError('idle_timeout', `session ${s} idle for ${this.o.idleTimeoutMs} ms`, s));
  }

  /** Ends every session (the connection closed). */
  closeAll(): void {
    clearInterval(this.idleTimer);
    for (const s of [...this.sessions.keys()]) this.closeSession(s);
  }

  terminate(): void {
    this.ws.terminate();
    this.closeAll();
  }

  private badFrame(err: LinkFrameError): void {
    this.stats.badFrames += 1;
    this.send({ t: 'err', ...(err.session === undefined ? {} : { s: err.session }), code: err.code, msg: err.message });
  }

  /** Bytes of the frame's tokens (and alternatives) the edge does not know yet. */
  private async withBytes(frame: VerifierFrame): Promise<VerifierFrame> {
    if (frame.t !== 'scored' && frame.t !== 'tok') return frame;
    const ids = [...frame.x, ...(frame.o ?? []).flatMap((top) => top.map(([id]) => id))];
    const fresh: WireBytes = [];
    for (const id of ids) {
      if (this.described.has(id)) continue;
      this.described.add(id);
      fresh.push([id, Buffer.from(await this.o.engine.tokenBytes(id)).toString('base64')]);
    }
    return fresh.length === 0 ? frame : { ...frame, b: fresh };
  }

  /** Frames leave in the order they were made, even when finding a token's bytes takes a while. */
  private outbox: Promise<void> = Promise.resolve();

  private send(frame: VerifierFrame): void {
    this.outbox = this.outbox
      .then(() => this.withBytes(frame))
      .then((f) => this.write(f))
      .catch((err: Error) => this.o.logger.warn('link frame not sent', { err: err.message }));
  }

  private write(frame: VerifierFrame): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    const payload = this.codec.encodeVerifier(frame);
    this.stats.bytesOut += payloadBytes(payload);
    this.ws.send(payload);
  }
}

/** `q` of a tok frame: what the step did with a proposal (absent when it had none). */
function proposalUse(step: AssistedStep): { q?: NonNullable<(VerifierFrame & { t: 'tok' })['q']> } {
  if (step.branch === true) return { q: [step.drafted, step.accepted, step.declined, 1] };
  if (step.declined > 0) return { q: [step.drafted, step.accepted, step.declined] };
  return step.drafted > 0 ? { q: [step.drafted, step.accepted] } : {};
}

function contextOverflow(err: unknown): boolean {
  return err instanceof DsdError && err.code === 'invalid_request';
}
