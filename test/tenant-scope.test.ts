import { MockAgent } from 'undici';
import { describe, expect, it } from 'vitest';
import { VllmServer } from '../src/backends/vllm/client.js';
import { loadConfig } from '../src/config/load-config.js';
import { demoModels } from '../src/demo/demo-backends.js';
import { VllmEmulator } from '../src/demo/vllm-emulator.js';
import { cacheScopeOf } from '../src/server/http/tenant.js';
import { affinityKey } from '../src/server/upstreams/affinity.js';
import { postJson, startTestDsd } from './helpers/dsd.js';

describe('tenant cache scope', () => {
  it('DSD_CACHE_SCOPE is tenant by default, global on request, and DSD_TENANT_HEADER must be a header name', () => {
    expect(loadConfig({}).cacheScope).toBe('tenant');
    expect(loadConfig({ DSD_CACHE_SCOPE: 'global' }).cacheScope).toBe('global');
    expect(loadConfig({ DSD_TENANT_HEADER: 'X-Tenant-Id' }).tenantHeader).toBe('x-tenant-id');
    expect(() => loadConfig({ DSD_CACHE_SCOPE: 'shared' })).toThrow(/DSD_CACHE_SCOPE/);
    expect(() => loadConfig({ DSD_TENANT_HEADER: 'x tenant' })).toThrow(/DSD_TENANT_HEADER/);
  });

  it('a scope per key, per trusted header value, and none at all in global scope', () => {
    const tenant = { cacheScope: 'tenant' as const, tenantHeader: undefined };
    const a = cacheScopeOf(tenant, 'digest-a', {});
    expect(a).toHaveLength(22);
    expect(cacheScopeOf(tenant, 'digest-a', {})).toBe(a);
    expect(cacheScopeOf(tenant, 'digest-b', {})).not.toBe(a);
    expect(a).not.toContain('digest-a');
    // The header counts only when configured: a client cannot pick another tenant's scope with it.
    expect(cacheScopeOf(tenant, 'digest-a', { 'x-tenant-id': 'other' })).toBe(a);
    const gateway = { cacheScope: 'tenant' as const, tenantHeader: 'x-tenant-id' };
    expect(cacheScopeOf(gateway, 'digest-a', { 'x-tenant-id': 'one' })).not.toBe(
      cacheScopeOf(gateway, 'digest-a', { 'x-tenant-id': 'two' }),
    );
    expect(cacheScopeOf({ cacheScope: 'global', tenantHeader: undefined }, 'digest-a', {})).toBe('');
  });

  it('affinity keys differ between scopes for the same conversation', () => {
    const input = { kind: 'text' as const, text: 'Once upon a time' };
    expect(affinityKey(input, 'a')).toBe(affinityKey(input, 'a'));
    expect(affinityKey(input, 'a')).not.toBe(affinityKey(input, 'b'));
  });

  it('the vLLM adapter sends cache_salt on scoring, proposing and streaming when given one', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const server = new VllmServer({
      baseUrl: 'http://vllm.test',
      role: 'target',
      model: 'm',
      dispatcher: agent,
      timeouts: { connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 },
    });
    const bodies: any[] = [];
    agent
      .get('http://vllm.test')
      .intercept({ path: '/v1/completions', method: 'POST' })
      .reply(200, (o) => {
        bodies.push(JSON.parse(String(o.body)));
        return { choices: [{ index: 0, token_ids: [5], finish_reason: 'length' }] };
      })
      .times(2);
    const sampling = { temperature: 0, topP: 1, topK: 0, minP: 0 };
    const signal = AbortSignal.timeout(5_000);
    await server.score({ prompts: [[1, 2]], sampling, topN: 1, postSamplingProbs: false, cacheSalt: 's1', signal });
    await server.propose({ promptIds: [1], maxTokens: 1, sampling, topN: 1, postSamplingProbs: false, signal });
    expect(bodies[0].cache_salt).toBe('s1');
    expect(bodies[1]).not.toHaveProperty('cache_salt');
    await agent.close();
  });

  it('passthrough to vLLM: the tenant’s cache_salt replaces any the client sent', async () => {
    const vllm = new VllmEmulator({ model: demoModels().target, alias: 'big' });
    await vllm.listen();
    const dsd = await startTestDsd({ target: { urls: [vllm.url] }, apiKeys: ['k1', 'k2'] });
    try {
      const send = async (key: string) => {
        const r = await postJson(
          `${dsd.baseUrl}/v1/completions`,
          { model: 'big', prompt: 'Once upon a time', max_tokens: 2, cache_salt: 'chosen-by-client' },
          { authorization: `Bearer ${key}` },
        );
        expect(r.status).toBe(200);
        return (vllm.stats.lastCompletionBody as Record<string, unknown>).cache_salt;
      };
      const [a, b] = [await send('k1'), await send('k2')];
      expect(typeof a).toBe('string');
      expect(a).not.toBe('chosen-by-client');
      expect(b).not.toBe(a);
      expect(await send('k1')).toBe(a);
    } finally {
      await dsd.close();
      await vllm.close();
    }
  });
});
