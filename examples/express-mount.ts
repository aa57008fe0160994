/**
 * Mounting dsd inside an existing Express app: the user's own routes stay as they are, and the
 * OpenAI-compatible API appears under /llm/v1.
 *
 *   DSD_TARGET_URL=http://gpu-box:8000 DSD_DRAFT_URL=http://localhost:8081 npx tsx examples/express-mount.ts
 */
import type { Server } from 'node:http';
import express from 'express';
import { createDsdMiddleware, type DsdMiddlewareOptions } from '../src/index.js';

/** Builds the example app; options override the DSD_* environment. */
export function buildApp(options: DsdMiddlewareOptions = {}) {
  const app = express();
  app.get('/', (_req, res) => {
    res.send('my app; the LLM API is at /llm/v1');
  });
  const dsd = createDsdMiddleware(options);
  app.use('/llm', dsd);
  return { app, dsd };
}

/** Starts the example on `port` (0: any free port). */
export async function main(
  port = Number(process.env.PORT ?? 3000),
  options: DsdMiddlewareOptions = {},
): Promise<Server> {
  const { app } = buildApp(options);
  const server = app.listen(port, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await main();
  console.log('listening', server.address());
}
