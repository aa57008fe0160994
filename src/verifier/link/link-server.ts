import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { chooseSubprotocol, LINK_VERSIONS, versionOf } from '../../backends/link/link-codec.js';
import { keyMatches } from '../../server/http/auth.js';
import { LinkConnection } from './link-connection.js';
import type { LinkServerOptions, LinkStats } from './types.js';

export type { LinkServerOptions, LinkStats } from './types.js';

/** The link endpoint attached to the verifier's HTTP server. */
export interface LinkServer {
  readonly stats: LinkStats;
  /**
   * Stops taking sessions and tells every edge (a `drain` frame); resolves when the sessions
   * open now have ended or after `ms`, whichever is first. Edges open new generations elsewhere.
   */
  drain(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Path of the link's WebSocket endpoint. */
export const LINK_PATH = '/v1/link';

function refuse(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: { message, type: 'authentication_error', param: null, code: 'unauthorized' } });
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Bad Request'}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

/** Link counters before any traffic. */
export function emptyLinkStats(): LinkStats {
  return {
    connections: 0,
    sessions: 0,
    rounds: 0,
    staleRounds: 0,
    unverifiedDraftTokens: 0,
    branchSteps: 0,
    continuedDrafts: 0,
    draftTokens: 0,
    badFrames: 0,
    bytesIn: 0,
    bytesOut: 0,
  };
}

/**
 * Accepts edges on `/v1/link` (WebSocket, subprotocol `dsd-link.3` or `.2` (binary) or `.1` (JSON),
 * `Authorization: Bearer <key>`)
 * and runs their sessions on the engine. One connection per edge carries all its sessions; a
 * session belongs to the connection that opened it, so no other edge can send into it.
 */
export function attachLinkServer(http: Server, o: LinkServerOptions): LinkServer {
  const stats = emptyLinkStats();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: o.maxFrameBytes,
    handleProtocols: (protocols) => chooseSubprotocol(protocols) ?? false,
  });
  const open = new Set<LinkConnection>();
  let drainMs: number | undefined;
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (new URL(req.url ?? '/', 'http://verifier').pathname !== LINK_PATH) return refuse(socket, 400, 'no such link');
    if (o.keys.length > 0 && !keyMatches(o.keys, bearer(req) ?? ''))
      return refuse(socket, 401, 'the link needs Authorization: Bearer <edge key>');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (chooseSubprotocol(new Set(offered)) === undefined) {
      const spoken = LINK_VERSIONS.map((v) => v.subprotocol).join(', ');
      return refuse(socket, 400, `the link speaks one of ${spoken}; upgrade the edge and the verifier together`);
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const connection = new LinkConnection(ws, o, { stats, encoding: versionOf(ws.protocol)?.encoding ?? 'json' });
      if (drainMs !== undefined) connection.drain(drainMs);
      open.add(connection);
      stats.connections += 1;
      ws.on('message', (data: RawData, isBinary: boolean) => connection.receive(data, isBinary));
      ws.on('close', () => {
        open.delete(connection);
        stats.connections -= 1;
        connection.closeAll();
      });
      ws.on('error', (err) => o.logger.warn('link connection error', { err: err.message }));
    });
  });
  return {
    stats,
    drain: async (ms) => {
      drainMs = ms;
      for (const c of open) c.drain(ms);
      const deadline = Date.now() + ms;
      const busy = () => [...open].some((c) => c.openSessions > 0);
      while (busy() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    },
    close: async () => {
      for (const c of open) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
