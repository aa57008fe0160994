import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { createLogger } from '../src/logger.js';
import { startDsd } from '../src/server/main.js';
import { postJson } from './helpers/dsd.js';

describe('shutdown', () => {
  it('stop(): the listener closes at once, in-flight streams finish, then it resolves', async () => {
    const target = new LlamaEmulator({ model: demoModels().target, alias: 'target', latency: { perTokenMs: 10 } });
    await target.listen();
    const dsd = await startDsd(loadConfig({}, { port: 0, target: { urls: [target.url] } }), createLogger('silent'));
    const base = dsd.baseUrl.replace(/\/v1$/, '');
    try {
      const inFlight = fetch(`${base}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'target',
          prompt: 'Once upon a time',
          max_tokens: 30,
          temperature: 0,
          stream: true,
        }),
      }).then((r) => r.text());
      await new Promise((r) => setTimeout(r, 50));
      // The listener stops accepting at once; the in-flight stream still runs to its end.
      const stopping = dsd.stop(5_000);
      const text = await inFlight;
      expect(text.trim().endsWith('data: [DONE]')).toBe(true);
      await stopping;
      expect(dsd.server.listening).toBe(false);
      await expect(fetch(`${base}/health`)).rejects.toThrow();
    } finally {
      await target.close();
    }
  });

  it('a draining instance answers /ready 503 and refuses new generations with 503 + Retry-After', async () => {
    const target = new LlamaEmulator({ model: demoModels().target, alias: 'target' });
    await target.listen();
    const { createApp } = await import('../src/server/http/app.js');
    const { app, router } = createApp({
      config: loadConfig({}, { target: { urls: [target.url] } }),
      logger: createLogger('silent'),
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      router.dsd.draining = true;
      expect((await fetch(`${base}/ready`)).status).toBe(503);
      const r = await postJson(`${base}/v1/completions`, { model: 'target', prompt: 'x', max_tokens: 2 });
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('server_shutting_down');
      expect(r.headers.get('retry-after')).toBe('1');
    } finally {
      server.closeAllConnections();
      server.close();
      await router.close();
      await target.close();
    }
  });
});
