/**
 * The floor under dsd's passthrough cost on this machine: the CPU per request of the thinnest Node
 * proxies in front of the same emulated target (a bare node:http server, and Express 5 with its JSON
 * body parser, each forwarding with one undici request and parsing the JSON reply), next to dsd's own
 * passthrough, 1000 requests from 4 clients each, every proxy in its own process.
 *
 *   npm run build && npm run bench:proxy-floor
 */
import { spawn } from 'node:child_process';
import { type LoopbackProcess, metricValue, startDsdProcess, waitUntilAnswers } from '../src/bench/dsd-process.js';
import { freePort } from '../src/bench/llama-process.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';

const models = demoModels();
const target = new LlamaEmulator({ model: models.target, alias: 'target', slots: 64 });
await target.listen();
/** A proxy process whose /cpu answers its own process.cpuUsage(), once it answers. */
async function thinProxy(kind: 'http' | 'express'): Promise<LoopbackProcess> {
  const port = await freePort();
  const script = `
    const http = await import('node:http');
    const { Pool } = await import(${JSON.stringify(import.meta.resolve('undici'))});
    const express = (await import(${JSON.stringify(import.meta.resolve('express'))})).default;
    const pool = new Pool(${JSON.stringify(target.url)}, { connections: 64 });
    async function forward(body, res) {
      const headers = { 'content-type': 'application/json' };
      const path = '/v1/chat/completions';
      const r = await pool.request({ path, method: 'POST', headers, body: JSON.stringify(body) });
      const out = JSON.stringify(await r.body.json());
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    }
    const cpu = (res) => res.end(JSON.stringify(process.cpuUsage()));
    if (${JSON.stringify(kind)} === 'express') {
      const app = express();
      app.use(express.json());
      app.post('/v1/chat/completions', (req, res) => forward(req.body, res));
      app.get('/cpu', (_req, res) => cpu(res));
      app.listen(${port}, '127.0.0.1');
    } else {
      http.createServer((req, res) => {
        if (req.url === '/cpu') return cpu(res);
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => forward(JSON.parse(Buffer.concat(chunks).toString()), res));
      }).listen(${port}, '127.0.0.1');
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilAnswers(`${url}/cpu`);
  return { url, child };
}

async function cpuMs(url: string, kind: string): Promise<number> {
  if (kind !== 'dsd') {
    const u = (await (await fetch(`${url}/cpu`)).json()) as { user: number; system: number };
    return (u.user + u.system) / 1000;
  }
  return 1000 * (await metricValue(url, 'dsd_process_cpu_seconds_total'));
}

const body = JSON.stringify({
  model: 'target',
  messages: [{ role: 'user', content: 'Once upon a time' }],
  max_tokens: 8,
  temperature: 0,
});
console.log('\n| proxy in front of the emulated target | CPU per request |\n|---|---|');
for (const kind of ['http', 'express', 'dsd'] as const) {
  const { url, child } =
    kind === 'dsd' ? await startDsdProcess({ DSD_TARGET_URL: target.url, DSD_WORKERS: '1' }) : await thinProxy(kind);
  try {
    const one = async () => {
      const headers = { 'content-type': 'application/json', 'x-dsd-speculative': 'off' };
      await (await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body })).text();
    };
    const loop = async (n: number) => {
      for (let i = 0; i < n; i++) await one();
    };
    await Promise.all([1, 2, 3, 4].map(() => loop(25)));
    const c0 = await cpuMs(url, kind);
    await Promise.all([1, 2, 3, 4].map(() => loop(250)));
    const c1 = await cpuMs(url, kind);
    const name = { http: 'bare node:http + undici', express: 'Express 5 + undici', dsd: 'dsd passthrough' }[kind];
    console.log(`| ${name} | ${((c1 - c0) / 1000).toFixed(3)} ms |`);
  } finally {
    child.kill('SIGTERM');
  }
}
await target.close();
