import { once } from 'node:events';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TlsFiles } from '../config/types.js';

/** A listening server and the origin it answers at (`https://` when TLS is set). */
export interface Listening {
  server: Server;
  origin: string;
}

/** Listens with HTTP, or HTTPS when a certificate and key are given (the verifier's link is then wss). */
export async function listen(app: RequestListener, o: { host: string; port: number; tls?: TlsFiles | undefined }) {
  const tls = o.tls;
  // With a client CA, the TLS handshake itself refuses a client without a certificate it signed.
  const mutual = tls?.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true };
  const server: Server =
    tls === undefined ? createHttpServer(app) : createHttpsServer({ cert: tls.cert, key: tls.key, ...mutual }, app);
  server.listen(o.port, o.host);
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, origin: `${o.tls === undefined ? 'http' : 'https'}://${host}:${address.port}` } satisfies Listening;
}
