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
  rng?: () => number;
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

  /** Copies `from` to `to`, releasing each chunk after the delay, in order. */
  private forward(from: Socket, to: Socket): void {
    let releaseAt = 0;
    const schedule = (action: () => void) => {
      const jitter = (this.o.jitterMs ?? 0) * (this.o.rng ?? Math.random)();
      releaseAt = Math.max(releaseAt, performance.now() + this.oneWayDelayMs + jitter);
      const wait = releaseAt - performance.now();
      if (wait <= 0) action();
      else setTimeout(action, wait);
    };
    from.on('data', (chunk) => schedule(() => !to.destroyed && to.write(chunk)));
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
