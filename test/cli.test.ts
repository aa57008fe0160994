import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = ['--import', 'tsx', 'src/cli.ts'];

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cli, ...args],
      { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe('dsd CLI', () => {
  it('--help lists serve and its flags', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dsd serve');
    expect(r.stdout).toContain('--target-url');
  });

  it('reports every configuration error at once and exits non-zero', async () => {
    const r = await run(['serve', '--port', 'eighty'], { DSD_TARGET_KIND: 'nope', DSD_LOG_LEVEL: 'chatty' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('DSD_PORT');
    expect(r.stderr).toContain('DSD_TARGET_KIND');
    expect(r.stderr).toContain('DSD_LOG_LEVEL');
  });

  it('a target that answers neither API is a clear startup error', async () => {
    const r = await run(['serve', '--target-url', 'http://127.0.0.1:9', '--port', '0'], {
      DSD_TARGET_CONNECT_TIMEOUT_MS: '500',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot start: .*target server at http:\/\/127\.0\.0\.1:9/);
  });

  it('serve with no target runs the demo backends, prints the base URL, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [...cli, 'serve', '--port', '0'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 15_000;
    while (!/\/v1/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const baseUrl = /at (http:\/\/\S+\/v1)/.exec(stdout)?.[1];
    expect(baseUrl).toBeDefined();
    expect(stdout).toContain('DEMO');
    expect(stderr).toContain('DEMO backends');
    const r = await fetch(`${baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'dsd-demo-target',
        messages: [{ role: 'user', content: 'Tell me a story' }],
        max_tokens: 8,
      }),
    });
    expect(r.status).toBe(200);
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
