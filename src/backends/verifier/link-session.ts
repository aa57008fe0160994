import { commonPrefix } from '../../speculative/common-prefix.js';
import type { AssistedChunk, AssistedStream } from '../../speculative/engine-types.js';
import type { GeneratedToken, SamplingParams } from '../../speculative/types.js';
import type { VerifierFrame, WireTop } from '../link/protocol.js';
import type { LinkClient } from './link-client.js';

/** Timeouts of a session's requests. */
export interface LinkSessionTimeouts {
  /** Longest wait for a verdict. */
  headersTimeoutMs: number;
  /** Longest silence inside a target-only stream. */
  bodyTimeoutMs: number;
}

function tokensOf(
  f: VerifierFrame & { t: 'scored' | 'tok' },
  eosId: number | undefined,
  bytes: ReadonlyMap<number, Uint8Array>,
): GeneratedToken[] {
  return f.x.map((id, i) => {
    const token: GeneratedToken = { id };
    const b = bytes.get(id);
    if (b !== undefined) token.bytes = b;
    const logprob = f.l?.[i];
    if (typeof logprob === 'number') token.logprob = logprob;
    const top: WireTop | undefined = f.o?.[i];
    if (top !== undefined)
      token.top = top.map(([tid, lp]) => {
        const alt: { id: number; logprob: number; bytes?: Uint8Array } = { id: tid, logprob: lp };
        const ab = bytes.get(tid);
        if (ab !== undefined) alt.bytes = ab;
        return alt;
      });
    if (id === eosId) token.endOfGeneration = true;
    return token;
  });
}

/**
 * How many of a chain's leading drafts (from `at`) the chain sent before it holds at the same
 * positions: what a continued chain need not send again. Never all of them: a `prop` with no
 * tokens of its own means a tree's branches.
 */
export function repeatedTokens(sent: { at: number; d: readonly number[] }, at: number, d: readonly number[]): number {
  const i = at - sent.at;
  if (i < 0) return 0;
  let n = 0;
  while (n < d.length - 1 && i + n < sent.d.length && sent.d[i + n] === d[n]) n++;
  return n;
}

/** What a session is opened with. */
export interface LinkSessionOptions {
  sampling: SamplingParams;
  topN: number;
  eosId: number | undefined;
  timeouts: LinkSessionTimeouts;
  /** The request's cache scope ('' for global): sent on open, so KV is reused only within it. */
  scope: string;
}

/**
 * One generation's session on a verifier, seen from the edge. It mirrors the context the verifier
 * holds for it, so each request sends only the difference: how much of that context to keep and
 * what to append, plus the draft tokens. Requests go out in order and the verifier runs them in
 * order, so the mirror is updated when a request is sent.
 */
export class LinkSession {
  private readonly s: number;
  private opened = false;
  private epoch = -1;
  private remote: number[] = [];
  private nextRequest = 1;
  /** The target's pace when it decodes alone (ms between tokens), seen from the edge. */
  private tokenGapMs: number | undefined;

  constructor(
    private readonly link: LinkClient,
    private readonly o: LinkSessionOptions,
  ) {
    this.s = link.sessionId();
  }

  /**
   * The delta of `ctx` against the mirror, with the frame that opens the session first when it is
   * not open yet. The mirror changes before anything is awaited, so requests made back to back
   * (early verification) see each other's contexts in the order they go out.
   */
  private delta(ctx: readonly number[]): { n: number; a: number[]; opening: Promise<void> | undefined } {
    if (this.epoch !== this.link.epoch) this.opened = false;
    if (!this.opened) {
      this.epoch = this.link.epoch;
      this.opened = true;
      this.remote = [...ctx];
      const { temperature, topP, topK, minP } = this.o.sampling;
      const m = { temperature, topP, topK, minP };
      const open = { t: 'open' as const, s: this.s, p: [...ctx], m, n: this.o.topN };
      // The tenant's scope: the verifier reuses KV only between sessions of the same scope.
      const frame = this.o.scope === '' ? open : { ...open, c: this.o.scope };
      return { n: ctx.length, a: [], opening: this.link.send(frame) };
    }
    const n = commonPrefix(this.remote, ctx);
    const a = ctx.slice(n);
    this.remote.length = n;
    for (const id of a) this.remote.push(id);
    return { n, a, opening: undefined };
  }

  /** The target's token after `ctx` and after each prefix of `drafts`, in one evaluation. */
  async score(ctx: readonly number[], drafts: readonly number[], signal: AbortSignal): Promise<GeneratedToken[]> {
    const r = this.nextRequest++;
    const { n, a, opening } = this.delta(ctx);
    return new Promise<GeneratedToken[]>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.link.forget(this.s, r);
      };
      const onAbort = () => {
        done();
        reject(signal.reason as Error);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          this.link.error(
            'upstream_unavailable',
            `no verdict from the verifier in ${this.o.timeouts.headersTimeoutMs} ms`,
          ),
        );
      }, this.o.timeouts.headersTimeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.link.expect(this.s, r, {
        onFrame: (f) => {
          done();
          if (f.t === 'scored' && f.z === 1)
            reject(
              this.link.error('upstream_error', 'the verifier found this early round refuted by the last verdict'),
            );
          // Fewer positions than drafts + 1: a shared verifier verified only the leading drafts.
          else if (f.t === 'scored' && f.x.length >= 1 && f.x.length <= drafts.length + 1)
            resolve(tokensOf(f, this.o.eosId, this.link.tokenBytes));
          else reject(this.link.error('upstream_bad_response', `the verifier answered a round with '${f.t}'`));
        },
        onError: (err) => {
          done();
          reject(err);
        },
      });
      opening?.catch(() => {});
      this.link.send({ t: 'score', s: this.s, r, n, a, d: [...drafts] }).catch((err: Error) => {
        done();
        reject(err);
      });
    });
  }

  /** The target alone from `ctx`, streamed; returning early stops it on the verifier. */
  async *generate(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AsyncGenerator<GeneratedToken> {
    const r = this.nextRequest++;
    for await (const chunk of this.stream(r, ctx, maxTokens, signal, false)) yield* chunk.tokens;
  }

  /**
   * The assisted stream: the verifier decodes by itself and verifies the proposals sent into the
   * stream where they line up with what it committed meanwhile.
   */
  assist(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AssistedStream {
    const r = this.nextRequest++;
    // The newest chain this stream sent, on which connection: a chain that repeats its tokens
    // continues it where the link's version lets it (only its new tokens cross).
    let sent: { at: number; d: readonly number[]; epoch: number } | undefined;
    return {
      chunks: this.stream(r, ctx, maxTokens, signal, true),
      lead: () => {
        const rtt = this.link.rttMs;
        return rtt === undefined || this.tokenGapMs === undefined ? undefined : rtt / this.tokenGapMs;
      },
      paceMs: () => this.tokenGapMs,
      propose: (at, d, branches, window) => {
        const b = branches?.map((x): [number, number[]] => [x.from, x.tokens]) ?? [];
        const continues = this.link.continuedChains && sent?.epoch === this.link.epoch;
        const e = continues && sent !== undefined ? repeatedTokens(sent, at, d) : 0;
        if (d.length > 0) sent = { at, d: [...d], epoch: this.link.epoch };
        const frame = {
          t: 'prop' as const,
          s: this.s,
          r,
          at: at + e,
          d: d.slice(e),
          ...(window === undefined ? {} : { w: window }),
          ...(e > 0 ? { e } : {}),
        };
        this.link.send(b.length > 0 ? { ...frame, b } : frame).catch(() => {});
      },
    };
  }

  private async *stream(
    r: number,
    ctx: readonly number[],
    maxTokens: number,
    signal: AbortSignal,
    assisted: boolean,
  ): AsyncGenerator<AssistedChunk> {
    const { n, a, opening } = this.delta(ctx);
    opening?.catch(() => {});
    const queue: AssistedChunk[] = [];
    let lastAt: number | undefined;
    let ended = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    this.link.expect(this.s, r, {
      onFrame: (f) => {
        if (f.t === 'tok') {
          const now = performance.now();
          if (lastAt !== undefined && f.q === undefined) {
            // A stall on the link (a lost segment's retransmission) shows as one long gap and then
            // a burst; the long gap counts at most 3× the pace so far, so one stall does not
            // halve the proposals' length for the next dozen tokens.
            const raw = (now - lastAt) / Math.max(1, f.x.length);
            const gap = this.tokenGapMs === undefined ? raw : Math.min(raw, 3 * this.tokenGapMs);
            this.tokenGapMs = this.tokenGapMs === undefined ? gap : 0.8 * this.tokenGapMs + 0.2 * gap;
          }
          lastAt = now;
          queue.push({
            tokens: tokensOf(f, this.o.eosId, this.link.tokenBytes),
            drafted: f.q?.[0] ?? 0,
            accepted: f.q?.[1] ?? 0,
            declined: f.q?.[2] ?? 0,
            branch: f.q?.[3] === 1,
            ...(f.k === undefined ? {} : { window: f.k }),
          });
        } else ended = true;
        notify();
      },
      onError: (err) => {
        failure = err;
        notify();
      },
    });
    const yielded = [...ctx];
    try {
      await this.link.send({ t: 'gen', s: this.s, r, n, a, k: maxTokens, ...(assisted ? { p: 1 as const } : {}) });
      for (;;) {
        const chunk = queue.shift();
        if (chunk !== undefined) {
          for (const t of chunk.tokens) yielded.push(t.id);
          yield chunk;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) return;
        await this.wait(signal, (w) => {
          wake = w;
        });
      }
    } finally {
      this.link.forget(this.s, r);
      // The verifier holds at least what was yielded (a prefix of what it made): the mirror.
      this.remote = yielded;
      if (!ended && failure === undefined) this.link.send({ t: 'stop', s: this.s, r }).catch(() => {});
    }
  }

  private wait(signal: AbortSignal, setWake: (w: () => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        reject(
          this.link.error(
            'upstream_unavailable',
            `the verifier stream was silent for ${this.o.timeouts.bodyTimeoutMs} ms`,
          ),
        );
      }, this.o.timeouts.bodyTimeoutMs);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      setWake(() => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** Ends the session on the verifier (its KV stays there for a later turn). */
  close(): void {
    if (this.opened) this.link.send({ t: 'close', s: this.s }).catch(() => {});
  }
}
