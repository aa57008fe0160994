import WebSocket from 'ws';
import { UpstreamError } from '../../errors.js';
import type { LinkCounters } from '../http.js';
import {
  type LinkCodec,
  type LinkEncoding,
  linkCodec,
  offeredSubprotocols,
  payloadBytes,
  versionOf,
} from '../link/link-codec.js';
import type { EdgeFrame, LinkErrorCode, VerifierFrame } from '../link/protocol.js';

/** Where and how the edge reaches a verifier's link. */
export interface LinkClientOptions {
  /** ws:// or wss:// URL of the verifier's `/v1/link`. */
  url: string;
  apiKey?: string | undefined;
  connectTimeoutMs: number;
  /** PEM CA certificates trusted for wss (in addition to the system's). */
  ca?: string | undefined;
  /** A client certificate and key for a verifier that requires them (mutual TLS). */
  clientCert?: { cert: string; key: string } | undefined;
  /** What the edge offers: binary (version 2, falling back to JSON on an older verifier) or JSON only. */
  encoding?: LinkEncoding | undefined;
}

/** What a session waits for: one `scored`, or the `tok` frames of a stream until `end`. */
interface Pending {
  onFrame: (f: VerifierFrame) => void;
  onError: (err: Error) => void;
}

/** Bytes a WebSocket frame adds to its payload: 2 (+2 past 125 bytes), +4 for the edge's mask. */
function frameOverhead(payloadBytes: number, masked: boolean): number {
  return (payloadBytes > 125 ? 4 : 2) + (masked ? 4 : 0);
}

/**
 * The edge's one long-lived WebSocket to a verifier, shared by all its sessions. It connects on
 * first use and again after a close; a close fails every pending request with a clean upstream
 * error, so a generation in flight ends with an in-band error and dsd stays up.
 */
export class LinkClient {
  readonly counters: LinkCounters = { requests: 0, bytesSent: 0, bytesReceived: 0 };
  private socket: Promise<{ ws: WebSocket; codec: LinkCodec }> | undefined;
  private readonly pending = new Map<string, Pending>();
  private nextSession = 1;
  /** Counts closed connections: sessions opened before a close must open again. */
  epoch = 0;
  /** Round trip of the link, from WebSocket pings (undefined until the first pong). */
  rttMs: number | undefined;
  /** The verifier said it is shutting down (until this connection ends). */
  draining = false;
  /** The open connection's version lets a proposal continue the chain before it (LinkVersion). */
  continuedChains = false;
  /** Token bytes told on the open connection, and on the one whose frame is being handled. */
  private live: Map<number, Uint8Array> | undefined;
  private handling: Map<number, Uint8Array> | undefined;

  /** Token bytes the verifier told the connection whose frame is being handled (or the open one). */
  get tokenBytes(): ReadonlyMap<number, Uint8Array> {
    return this.handling ?? this.live ?? NO_BYTES;
  }

  constructor(private readonly o: LinkClientOptions) {}

  /** A fresh session id on this link. */
  sessionId(): number {
    const s = this.nextSession;
    this.nextSession = s >= 2 ** 31 - 2 ? 1 : s + 1;
    return s;
  }

  /** Sends a frame, connecting first when needed. */
  async send(frame: EdgeFrame): Promise<void> {
    const { ws, codec } = await this.connect();
    const payload = codec.encodeEdge(frame);
    const size = payloadBytes(payload);
    this.counters.bytesSent += size + frameOverhead(size, true);
    if (frame.t === 'score' || frame.t === 'gen') this.counters.requests += 1;
    ws.send(payload);
  }

  /** Registers the receiver of a session's request `r` until `forget`. */
  expect(s: number, r: number, p: Pending): void {
    this.pending.set(`${s}:${r}`, p);
  }

  forget(s: number, r: number): void {
    this.pending.delete(`${s}:${r}`);
  }

  private connect(): Promise<{ ws: WebSocket; codec: LinkCodec }> {
    if (this.socket !== undefined) return this.socket;
    // Each connection has its own token bytes (the verifier tells each token once per connection)
    // and acts on its own close only: a failed attempt that closes late must not end, or wipe
    // what was learned on, the connection that replaced it.
    const bytes = new Map<number, Uint8Array>();
    // The handshake chooses the codec ('open'); the message handler, registered before it, reads
    // this binding, and ws delivers no message before 'open'.
    let codec = linkCodec('json');
    const current = new Promise<{ ws: WebSocket; codec: LinkCodec }>((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (this.o.apiKey !== undefined) headers.authorization = `Bearer ${this.o.apiKey}`;
      const ws = new WebSocket(this.o.url, offeredSubprotocols(this.o.encoding ?? 'binary'), {
        headers,
        handshakeTimeout: this.o.connectTimeoutMs,
        perMessageDeflate: false,
        ...(this.o.ca === undefined ? {} : { ca: this.o.ca }),
        ...this.o.clientCert,
      });
      ws.once('open', () => {
        const version = versionOf(ws.protocol);
        if (version === undefined) {
          reject(
            this.error('upstream_error', `the verifier chose link subprotocol '${ws.protocol}', not one of dsd's`),
          );
          ws.terminate();
          return;
        }
        codec = linkCodec(version.encoding);
        this.live = bytes;
        this.continuedChains = version.continuedChains;
        this.ping(ws);
        resolve({ ws, codec });
      });
      ws.once('unexpected-response', (_req, res) => {
        reject(this.error('upstream_error', `the verifier refused the link (HTTP ${res.statusCode})`));
        res.resume();
        ws.terminate();
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => this.receive(codec, { data, isBinary }, bytes));
      ws.once('error', (err) => reject(this.error('upstream_unavailable', `verifier link: ${err.message}`)));
      ws.once('close', () => {
        reject(this.error('upstream_unavailable', 'the verifier link closed'));
        if (this.socket !== current) return;
        this.socket = undefined;
        this.live = undefined;
        this.continuedChains = false;
        this.draining = false;
        this.epoch += 1;
        this.failAll(this.error('upstream_unavailable', 'the verifier link closed'));
      });
    });
    this.socket = current;
    current.catch(() => {
      if (this.socket === current) this.socket = undefined;
    });
    return current;
  }

  /**
   * Measures the round trip now and every second while the link is open, one ping in flight at a
   * time (a late pong is never timed against a newer ping). The estimate is the median of the last
   * 7 samples, so a ping caught behind a retransmission stall (hundreds of ms on a lossy link), or
   * behind a busy verifier's event loop, does not move it, and a fresh link has a few samples
   * within seconds (every 5 s, as before, a 13 s test once read a 155 ms median of three on a
   * 50 ms path). A link with no pong for 10 s is dead (a verifier host gone without a FIN): it is
   * ended, so its generations fail over instead of waiting out their own timeouts.
   */
  private ping(ws: WebSocket): void {
    let sentAt = performance.now();
    let answered = true;
    const samples: number[] = [];
    ws.on('pong', () => {
      if (answered) return;
      answered = true;
      samples.push(performance.now() - sentAt);
      if (samples.length > RTT_SAMPLES) samples.shift();
      this.rttMs = median(samples);
    });
    let silentMs = 0;
    const send = () => {
      if (!answered) {
        silentMs += PING_EVERY_MS;
        if (silentMs >= DEAD_AFTER_MS) ws.terminate();
        return;
      }
      silentMs = 0;
      answered = false;
      sentAt = performance.now();
      ws.ping();
    };
    send();
    const timer = setInterval(send, PING_EVERY_MS);
    timer.unref();
    ws.once('close', () => clearInterval(timer));
  }

  private receive(codec: LinkCodec, m: { data: Buffer; isBinary: boolean }, bytes: Map<number, Uint8Array>): void {
    this.counters.bytesReceived += m.data.length + frameOverhead(m.data.length, false);
    const f = codec.decodeVerifier(m.data, m.isBinary);
    if (f === undefined) return;
    this.handling = bytes;
    try {
      this.dispatch(f, bytes);
    } finally {
      this.handling = undefined;
    }
  }

  private dispatch(f: VerifierFrame, bytes: Map<number, Uint8Array>): void {
    if ((f.t === 'scored' || f.t === 'tok') && f.b !== undefined)
      for (const [id, b64] of f.b) bytes.set(id, Buffer.from(b64, 'base64'));
    if (f.t === 'drain') {
      this.draining = true;
      return;
    }
    if (f.t === 'err') {
      const err = this.error(linkErrorCode(f.code), `verifier: ${f.msg} (${f.code})`);
      if (f.s === undefined) return;
      for (const [key, p] of this.pending)
        if (key.startsWith(`${f.s}:`) && (f.r === undefined || key === `${f.s}:${f.r}`)) p.onError(err);
      return;
    }
    this.pending.get(`${f.s}:${f.r}`)?.onFrame(f);
  }

  private failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.onError(err);
  }

  error(code: 'upstream_unavailable' | 'upstream_error' | 'upstream_bad_response', message: string): UpstreamError {
    return new UpstreamError(code, message, { role: 'target' });
  }

  async close(): Promise<void> {
    // Its own close handler ends the connection's state and fails what is pending on it.
    const open = await this.socket?.catch(() => undefined);
    open?.ws.close();
  }
}

function linkErrorCode(code: LinkErrorCode): 'upstream_error' | 'upstream_bad_response' | 'upstream_unavailable' {
  if (code === 'draining') return 'upstream_unavailable';
  return code === 'bad_frame' || code === 'desync' ? 'upstream_bad_response' : 'upstream_error';
}

const NO_BYTES: ReadonlyMap<number, Uint8Array> = new Map();

/** Pings the round-trip estimate is the median of. */
const RTT_SAMPLES = 7;
/** How often the link is pinged (a ping and its pong are about 60 bytes on the wire). */
const PING_EVERY_MS = 1_000;
/** How long without a pong before the link counts as dead. */
const DEAD_AFTER_MS = 10_000;

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
