import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as runMountExample } from '../examples/express-mount.js';
import { main as runSdkExample } from '../examples/openai-sdk.js';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';

describe('examples', () => {
  let demo: DemoBackends;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    demo = await startDemoBackends();
    server = await runMountExample(0, {
      target: { urls: [demo.target.url] },
      draft: { urls: [demo.draft.url] },
      logLevel: 'silent',
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await demo.close();
  });

  it('express-mount keeps the app own routes and serves dsd under /llm', async () => {
    expect(await (await fetch(`${base}/`)).text()).toContain('my app');
    expect(await (await fetch(`${base}/llm/health`)).json()).toEqual({ status: 'ok' });
  });

  it('openai-sdk example streams a story through the mounted dsd', async () => {
    const text = await runSdkExample(`${base}/llm/v1`, 'unused');
    expect(text.trim().length).toBeGreaterThan(10);
  });
});
