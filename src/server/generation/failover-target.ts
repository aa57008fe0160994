import type { ModelServer } from '../../backends/types.js';
import { UpstreamError } from '../../errors.js';
import type { AssistedChunk, AssistedStream, TargetPort } from '../../speculative/engine-types.js';
import type { GeneratedToken } from '../../speculative/types.js';

/** A target port on one replica. */
export interface ReplicaPort {
  url: string;
  server: ModelServer;
  port: TargetPort & { close?: () => void };
}

/** What a generation's failover needs. */
export interface FailoverOptions {
  first: ReplicaPort;
  /** A port on the next replica, never one in `exclude`; undefined when none is left. */
  next: (exclude: ReadonlySet<string>, signal: AbortSignal) => Promise<ReplicaPort | undefined>;
  /** Told each time the generation moves (logs, metrics, the pool's breaker). */
  onFailover?: (from: string, to: string, err: unknown) => void;
}

/**
 * Whether a failure means the replica (or the link to it) is gone, not that the request was bad:
 * only then does the generation move. A client that left is never a failover.
 */
export function replicaLost(err: unknown, signal: AbortSignal): boolean {
  return (
    !signal.aborted && err instanceof UpstreamError && err.role === 'target' && err.code === 'upstream_unavailable'
  );
}

/**
 * A generation's target across replicas. Every request carries the whole committed context, so
 * when a replica dies or its link breaks, the request is made again on the next replica from that
 * context: a verdict is simply asked again, and a stream goes on from the tokens it already
 * yielded (nothing reaches the engine twice). Greedy output is the same token for token; at T > 0
 * the continuation is a fresh sample from the same distribution.
 */
export class FailoverTarget implements TargetPort {
  private current: ReplicaPort;
  private readonly tried = new Set<string>();
  private switching: Promise<ReplicaPort> | undefined;
  /** Times this generation moved to another replica. */
  failovers = 0;
  readonly assist?: NonNullable<TargetPort['assist']>;
  /**
   * The replica's own answer to "stream now?". Without it the engine reads a port with a stream as
   * always streaming, which put every generation through a verifier in the stream, rounds never
   * tried: alone at 0 ms a fixed window of 4 with no estimates, 0.75× llama-server's own speculation.
   */
  readonly streamNow?: NonNullable<TargetPort['streamNow']>;

  constructor(private readonly o: FailoverOptions) {
    this.current = o.first;
    if (o.first.port.assist !== undefined)
      this.assist = (ctx, maxTokens, signal) => this.assisted(ctx, maxTokens, signal);
    if (o.first.port.streamNow !== undefined) this.streamNow = () => this.current.port.streamNow?.() ?? true;
  }

  /** The replica serving the generation now (its server detokenizes the output). */
  get server(): ModelServer {
    return this.current.server;
  }

  /** The replica's URL now. */
  get url(): string {
    return this.current.url;
  }

  async score(prompts: readonly (readonly number[])[], signal: AbortSignal): Promise<GeneratedToken[]> {
    for (;;) {
      const r = this.current;
      try {
        return await r.port.score(prompts, signal);
      } catch (err) {
        if (!replicaLost(err, signal)) throw err;
        await this.replace(r, err, signal);
      }
    }
  }

  async *generate(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AsyncGenerator<GeneratedToken> {
    // The context as it was asked for: the caller's own array grows with what it commits.
    const base = [...ctx];
    const got: number[] = [];
    for (;;) {
      const r = this.current;
      try {
        for await (const t of r.port.generate(
          got.length === 0 ? base : [...base, ...got],
          maxTokens - got.length,
          signal,
        )) {
          got.push(t.id);
          yield t;
        }
        return;
      } catch (err) {
        if (!replicaLost(err, signal)) throw err;
        await this.replace(r, err, signal);
      }
    }
  }

  /** The assisted stream, re-opened on the next replica from what it already committed. */
  private assisted(ctx: readonly number[], maxTokens: number, signal: AbortSignal): AssistedStream {
    // A snapshot: the engine's context array grows with every chunk it takes, and a replay from
    // it plus `got` would repeat those tokens (the replica then continues a context nobody sent).
    const base = [...ctx];
    const got: number[] = [];
    const open = (r: ReplicaPort): AssistedStream => {
      const from = got.length === 0 ? base : [...base, ...got];
      return (
        r.port.assist?.(from, maxTokens - got.length, signal) ??
        aloneAsAssisted(r.port, from, maxTokens - got.length, signal)
      );
    };
    let replica = this.current;
    let inner = open(replica);
    const self = this;
    return {
      chunks: (async function* (): AsyncGenerator<AssistedChunk> {
        for (;;) {
          try {
            for await (const chunk of inner.chunks) {
              for (const t of chunk.tokens) got.push(t.id);
              yield chunk;
            }
            return;
          } catch (err) {
            if (!replicaLost(err, signal)) throw err;
            replica = await self.replace(replica, err, signal);
            inner = open(replica);
          }
        }
      })(),
      // Proposals in flight to a lost replica are lost with it; the next ones go to the new stream.
      propose: (at, drafts, branches, window) => inner.propose(at, drafts, branches, window),
      lead: () => inner.lead?.(),
      paceMs: () => inner.paceMs?.(),
    };
  }

  /**
   * Moves off `failed` once, however many of the generation's requests saw it fail; requests
   * that fail after the move just use the new replica. Throws `err` when no replica is left.
   */
  private async replace(failed: ReplicaPort, err: unknown, signal: AbortSignal): Promise<ReplicaPort> {
    if (this.current !== failed) return this.current;
    this.switching ??= (async () => {
      this.tried.add(failed.url);
      failed.port.close?.();
      const next = await this.o.next(this.tried, signal);
      if (next === undefined) throw err;
      this.current = next;
      this.failovers += 1;
      this.o.onFailover?.(failed.url, next.url, err);
      return next;
    })().finally(() => {
      this.switching = undefined;
    });
    return this.switching;
  }

  /** Ends the session on the replica serving it now. */
  close(): void {
    this.current.port.close?.();
  }
}

/** A target without the assisted stream, as one: it decodes alone and ignores proposals. */
function aloneAsAssisted(
  port: TargetPort,
  ctx: readonly number[],
  maxTokens: number,
  signal: AbortSignal,
): AssistedStream {
  return {
    chunks: (async function* () {
      for await (const t of port.generate(ctx, maxTokens, signal)) yield { tokens: [t], drafted: 0, accepted: 0 };
    })(),
    propose: () => {},
  };
}
