import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { LlamaEmulator } from '../src/demo/llamacpp-emulator.js';
import { postJson, startTestDsd } from './helpers/dsd.js';
import { hasOpenssl } from './helpers/openssl.js';

const canRun = hasOpenssl();
if (!canRun) console.warn('skipping HTTPS upstream tests: openssl not found');

describe.skipIf(!canRun)('HTTPS upstreams', () => {
  let dir: string;
  let target: LlamaEmulator;

  beforeAll(async () => {
    // A throwaway CA and a certificate for 127.0.0.1 signed by it.
    dir = mkdtempSync(join(tmpdir(), 'dsd-tls-'));
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=dsd test CA',
    );
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    );
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    run(
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '1',
      '-extfile',
      'ext.cnf',
    );
    target = new LlamaEmulator({
      model: demoModels().target,
      alias: 'target',
      tls: { key: readFileSync(join(dir, 'server.key'), 'utf8'), cert: readFileSync(join(dir, 'server.pem'), 'utf8') },
    });
    await target.listen();
  });
  afterAll(async () => {
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the certificate: an unknown CA is refused (502), the configured CA file is trusted', async () => {
    expect(target.url).toMatch(/^https:/);
    const untrusted = await startTestDsd({ target: { urls: [target.url], kind: 'llamacpp' } });
    try {
      const r = await postJson(`${untrusted.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: 'Once',
        max_tokens: 3,
      });
      expect(r.status).toBe(502);
      expect(r.body.error.code).toBe('upstream_unavailable');
    } finally {
      await untrusted.close();
    }
    const config = loadConfig({ DSD_CA_FILE: join(dir, 'ca.pem'), DSD_TARGET_URL: target.url });
    expect(config.caCertificates).toContain('BEGIN CERTIFICATE');
    const trusted = await startTestDsd({}, { DSD_CA_FILE: join(dir, 'ca.pem'), DSD_TARGET_URL: target.url });
    try {
      const r = await postJson(`${trusted.baseUrl}/v1/completions`, {
        model: 'target',
        prompt: 'Once',
        max_tokens: 3,
        temperature: 0,
      });
      expect(r.status).toBe(200);
      expect(r.body.choices[0].text.length).toBeGreaterThan(0);
    } finally {
      await trusted.close();
    }
  });
});
