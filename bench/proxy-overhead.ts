/**
 * Added latency of dsd in passthrough: the same small requests sent directly to the demo target
 * and through dsd, interleaved (A B A B …) in one run so machine noise cancels.
 *
 *   npm run bench:overhead [-- --requests 400]
 */

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { median, ms, percentile } from '../src/bench/stats.js';
import { loadConfig } from '../src/config/load-config.js';
import { startDemoBackends } from '../src/demo/demo-backends.js';
import { createLogger } from '../src/logger.js';
import { createApp } from '../src/server/http/app.js';

const { values } = parseArgs({
  options: { requests: { type: 'string', default: '300' }, stream: { type: 'boolean', default: false } },
});
const requests = Number(values.requests);
const demo = await startDemoBackends();
const { app, router } = createApp({
  config: loadConfig({}, { target: { urls: [demo.target.url] } }),
  logger: createLogger('silent'),
});
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const dsdUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const body = JSON.stringify({
  model: 'dsd-demo-target',
  messages: [{ role: 'user', content: 'Tell me a story' }],
  max_tokens: 8,
  temperature: 0,
  stream: values.stream,
});

async function timeOne(base: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return performance.now() - started;
}

for (let i = 0; i < 20; i++) await Promise.all([timeOne(demo.target.url), timeOne(dsdUrl)]);
const direct: number[] = [];
const proxied: number[] = [];
for (let i = 0; i < requests; i++) {
  direct.push(await timeOne(demo.target.url));
  proxied.push(await timeOne(dsdUrl));
}
const added = proxied.map((p, i) => p - (direct[i] as number));
console.log(`passthrough overhead, ${requests} requests each way, interleaved, stream=${values.stream}`);
console.log(`  direct   median ${ms(median(direct))}  p95 ${ms(percentile(direct, 95))}`);
console.log(`  via dsd  median ${ms(median(proxied))}  p95 ${ms(percentile(proxied, 95))}`);
console.log(`  added    median ${ms(median(added))}  (median of per-pair differences)`);
server.closeAllConnections();
server.close();
await router.close();
await demo.close();
