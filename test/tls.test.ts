import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/logger.js';
import { type RunningDsd, startDsd } from '../src/server/main.js';
import { postJson, startTestDsd } from './helpers/dsd.js';
import { llamaSkipReason, startLlamaServer } from './helpers/llama-server.js';
import { hasOpenssl } from './helpers/openssl.js';
import { startTestVerifier } from './helpers/verifier.js';

const dir = mkdtempSync(join(tmpdir(), 'dsd-tls-'));
const certFile = join(dir, 'cert.pem');
const keyFile = join(dir, 'key.pem');

/** HTTPS for dsd's own listener and for the verifier (whose link is then wss), with a self-signed certificate. */
describe.skipIf(!hasOpenssl())('TLS', () => {
  let cert: string;
  beforeAll(() => {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'],
        ...['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile],
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(certFile, 'utf8');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('DSD_TLS_CERT and DSD_TLS_KEY go together; a client CA needs them; client cert and key go together', () => {
    expect(() => loadConfig({ DSD_TLS_CERT: certFile })).toThrow(/DSD_TLS_CERT and DSD_TLS_KEY go together/);
    expect(() => loadConfig({ DSD_TLS_CLIENT_CA: certFile })).toThrow(/DSD_TLS_CLIENT_CA needs DSD_TLS_CERT/);
    expect(() => loadConfig({ DSD_CLIENT_KEY: keyFile })).toThrow(/DSD_CLIENT_CERT and DSD_CLIENT_KEY go together/);
  });

  /** The edge at `served` gets speculative rounds through the verifier; the one at `refused` a clean upstream error. */
  async function expectServedAndRefused(served: string, refused: string, body: unknown): Promise<void> {
    const ok = await postJson(`${served}/v1/completions`, body);
    expect(ok.status).toBe(200);
    expect(ok.body.usage.dsd.rounds).toBeGreaterThan(0);
    const bad = await postJson(`${refused}/v1/completions`, body);
    expect(bad.status).toBeGreaterThanOrEqual(500);
    expect(bad.body.error.code).toMatch(/^upstream_/);
  }

  describe('dsd over HTTPS', () => {
    let dsd: RunningDsd;
    beforeAll(async () => {
      const config = loadConfig({ DSD_TLS_CERT: certFile, DSD_TLS_KEY: keyFile, DSD_PORT: '0' });
      dsd = await startDsd(config, createLogger('silent'));
    });
    afterAll(() => dsd?.stop(0));

    it('serves the API over https to a client that trusts the certificate', async () => {
      expect(dsd.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/v1$/);
      const dispatcher = new Agent({ connect: { ca: cert } });
      const models = await undiciFetch(`${dsd.baseUrl}/models`, { dispatcher });
      expect(models.status).toBe(200);
      const plain = dsd.baseUrl.replace('https:', 'http:');
      await expect(fetch(`${plain}/models`)).rejects.toThrow();
      await dispatcher.close();
    });
  });

  describe.skipIf(llamaSkipReason() !== undefined)('mutual TLS on the edge↔verifier link', () => {
    it('a verifier with DSD_TLS_CLIENT_CA serves an edge with a signed client certificate, and no other', async () => {
      const ca = join(dir, 'ca.pem');
      const caKey = join(dir, 'ca.key');
      const clientKey = join(dir, 'client.key');
      const clientCsr = join(dir, 'client.csr');
      const clientCert = join(dir, 'client.pem');
      const openssl = (...args: string[][]) => execFileSync('openssl', args.flat(), { stdio: 'ignore' });
      const subject = (cn: string) => ['-nodes', '-subj', `/CN=${cn}`];
      openssl(['req', '-x509', '-newkey', 'rsa:2048'], subject('dsd-test-ca'), [
        '-days',
        '1',
        '-keyout',
        caKey,
        '-out',
        ca,
      ]);
      openssl(['req', '-newkey', 'rsa:2048'], subject('edge'), ['-keyout', clientKey, '-out', clientCsr]);
      openssl(
        ['x509', '-req', '-in', clientCsr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial'],
        ['-days', '1', '-out', clientCert],
      );
      const verifier = await startTestVerifier('stories260K-f32.gguf', {
        tls: { cert, key: readFileSync(keyFile, 'utf8'), clientCa: readFileSync(ca, 'utf8') },
      });
      const draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
      const body = { model: 'any', prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
      const env = { DSD_ACCEPT_ANY_MODEL: 'true', DSD_CA_FILE: certFile };
      const options = { target: { urls: [verifier.url] }, draft: { urls: [draft.url] } };
      const signed = await startTestDsd(options, { ...env, DSD_CLIENT_CERT: clientCert, DSD_CLIENT_KEY: clientKey });
      const anonymous = await startTestDsd(options, env);
      try {
        await expectServedAndRefused(signed.baseUrl, anonymous.baseUrl, body);
      } finally {
        await Promise.all([signed.close(), anonymous.close()]);
        await draft.stop();
        await verifier.stop();
      }
    });
  });

  describe.skipIf(llamaSkipReason() !== undefined)('the edge↔verifier link over wss', () => {
    it('works with the certificate trusted (DSD_CA_FILE) and fails cleanly without it', async () => {
      const verifier = await startTestVerifier('stories260K-f32.gguf', {
        tls: { cert, key: readFileSync(keyFile, 'utf8') },
      });
      const draft = await startLlamaServer({ model: 'stories260K-q4_0.gguf', alias: 'draft', slots: 2 });
      const body = { model: 'any', prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
      const env = { DSD_ACCEPT_ANY_MODEL: 'true' };
      const trusting = await startTestDsd(
        { target: { urls: [verifier.url] }, draft: { urls: [draft.url] } },
        { ...env, DSD_CA_FILE: certFile },
      );
      const doubting = await startTestDsd({ target: { urls: [verifier.url] }, draft: { urls: [draft.url] } }, env);
      try {
        expect(verifier.url).toMatch(/^https:/);
        await expectServedAndRefused(trusting.baseUrl, doubting.baseUrl, body);
      } finally {
        await Promise.all([trusting.close(), doubting.close()]);
        await draft.stop();
        await verifier.stop();
      }
    });
  });
});
