import { spawn } from 'node:child_process';

/**
 * Client CPU of the smallest exchange a speculative round is made of, the efficiency issue's
 * yardstick: a separate process (so nothing else is counted) sends undici `POST /completion` to
 * `url`, 4 at a time, parses each JSON reply, and reports its own CPU per request in ms.
 */
export async function minimalExchangeCpuMs(url: string, o: { requests?: number; nPredict?: number } = {}) {
  const requests = o.requests ?? 2000;
  const script = `
    const { Pool } = await import(${JSON.stringify(import.meta.resolve('undici'))});
    const pool = new Pool(${JSON.stringify(url)}, { connections: 4 });
    const body = JSON.stringify({ prompt: [1, 2, 3, 4, 5], n_predict: ${o.nPredict ?? 4}, n_probs: 1 });
    const one = async () => {
      const headers = { 'content-type': 'application/json' };
      const r = await pool.request({ path: '/completion', method: 'POST', headers, body });
      await r.body.json();
    };
    const loop = async (n) => { for (let i = 0; i < n; i++) await one(); };
    const run = (n) => Promise.all([1, 2, 3, 4].map(() => loop(n / 4)));
    await run(200);
    const c0 = process.cpuUsage();
    await run(${requests});
    const c = process.cpuUsage(c0);
    console.log((c.user + c.system) / 1000 / ${requests});
    await pool.close();`;
  const stdio = ['ignore', 'pipe', 'inherit'] as const;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: [...stdio] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  await new Promise((resolve) => child.on('close', resolve));
  const ms = Number(out.trim());
  if (!Number.isFinite(ms)) throw new Error(`the minimal-exchange process printed '${out.trim()}'`);
  return ms;
}
