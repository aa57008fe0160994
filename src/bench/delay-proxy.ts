import { once } from 'node:events';
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net';

/** Options of a delay proxy. */
export interface DelayProxyOptions {
  /** Where connections are forwarded. */
  targetHost: string;
  targetPort: number;
  /** Added to every chunk in each direction (RTT = 2 × this). */
  oneWayDelayMs: number;
  /** Extra uniform random delay in [0, jitterMs) per chunk; order is preserved. */
  jitterMs?: number;
  /**
   * A lost segment's retransmission, as the application sees it: with this probability a chunk
   * (and everything behind it in that direction, as TCP delivers in order) is held a further
   * uniform [minMs, maxMs).
   */
  stalls?: { probability: number; minMs: number; maxMs: number };
  rng?: () => number;
}

/** What a proxy did to the traffic, for the figures. */
export interface DelayProxyStats {
  chunks: number;
  stalls: number;
  /** TCP payload relayed, both directions (every byte the endpoints wrote: headers, frames, pings). */
  bytes: number;
}

/**
 * A loopback TCP proxy that delays every chunk by a one-way latency (plus optional jitter) in each
 * direction, to put a real server "across a network" on a machine without netem. Bytes keep their
 * order: a chunk is never released before the one before it.
 */
export class DelayProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  oneWayDelayMs: number;
  readonly stats: DelayProxyStats = { chunks: 0, stalls: 0, bytes: 0 };

  constructor(private readonly o: DelayProxyOptions) {
    this.oneWayDelayMs = o.oneWayDelayMs;
  }

  /** Listens on a free loopback port; returns the base URL (http). */
  async listen(): Promise<string> {
    this.server = createServer((client) => this.pipe(client));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this.url;
  }

  /** The proxy's base URL. */
  get url(): string {
    return `http://127.0.0.1:${(this.server?.address() as AddressInfo | undefined)?.port}`;
  }

  private pipe(client: Socket): void {
    const upstream = createConnection({ host: this.o.targetHost, port: this.o.targetPort });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  /**
   * Copies `from` to `to`, releasing each chunk after the delay, in order: one FIFO and one timer
   * per direction, since timers of different durations that fall due in the same millisecond may
   * fire in either order (a jittered relay that used a timer per chunk reordered bytes).
   */
  private forward(from: Socket, to: Socket): void {
    let releaseAt = 0;
    const queue: { at: number; action: () => void }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      timer = undefined;
      const now = performance.now();
      while (queue.length > 0 && (queue[0] as { at: number }).at <= now) queue.shift()?.action();
      const head = queue[0];
      if (head !== undefined) timer = setTimeout(pump, Math.max(1, Math.ceil(head.at - now)));
    };
    const rng = this.o.rng ?? Math.random;
    const schedule = (action: () => void) => {
      const jitter = (this.o.jitterMs ?? 0) * rng();
      releaseAt = Math.max(releaseAt, performance.now() + this.oneWayDelayMs + jitter);
      const stall = this.o.stalls;
      this.stats.chunks += 1;
      if (stall !== undefined && rng() < stall.probability) {
        this.stats.stalls += 1;
        releaseAt += stall.minMs + (stall.maxMs - stall.minMs) * rng();
      }
      queue.push({ at: releaseAt, action });
      if (timer === undefined) pump();
    };
    from.on('data', (chunk: Buffer) => {
      this.stats.bytes += chunk.length;
      schedule(() => !to.destroyed && to.write(chunk));
    });
    from.on('end', () => schedule(() => to.end()));
    from.on('close', () => schedule(() => to.destroy()));
  }

  /** Closes the listener and every open connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

/** A delay proxy in front of a loopback server at `url`, listening; returns it and its own URL. */
export async function delayProxyTo(url: string, oneWayDelayMs: number): Promise<{ proxy: DelayProxy; url: string }> {
  const proxy = new DelayProxy({ targetHost: '127.0.0.1', targetPort: Number(new URL(url).port), oneWayDelayMs });
  return { proxy, url: await proxy.listen() };
}
