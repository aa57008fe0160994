import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/load-config.js';
import type { DsdOptions } from '../../src/config/types.js';
import { createLogger } from '../../src/logger.js';
import { createApp, type DsdApp } from '../../src/server/http/app.js';

/** A dsd app listening on loopback for a test. */
export interface TestDsd extends DsdApp {
  baseUrl: string;
  server: Server;
  close(): Promise<void>;
}

/** Starts dsd with an empty environment plus `options` (tests never read the real DSD_* vars). */
export async function startTestDsd(options: DsdOptions, env: Record<string, string> = {}): Promise<TestDsd> {
  const config = loadConfig(env, options);
  const { app, router } = createApp({
    config,
    logger: createLogger(process.env.DSD_TEST_LOG === '1' ? 'debug' : 'silent'),
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    app,
    router,
    server,
    baseUrl: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await router.close();
    },
  };
}

/** POSTs JSON (or a raw string) and returns status and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Reads an SSE response into its `data` payloads. */
export async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .map((block) =>
      block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n'),
    )
    .filter((d) => d !== '');
}
