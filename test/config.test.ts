import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, normalizeUrl } from '../src/config/load-config.js';

describe('loadConfig', () => {
  it('has production defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.target.urls).toEqual([]);
    expect(c.target.kind).toBe('auto');
    expect(c.apiKeys).toEqual([]);
    expect(c.bodyLimitBytes).toBeGreaterThan(100 * 1024);
    expect(c.target.timeouts.connectTimeoutMs).toBeGreaterThan(0);
  });

  it('reads every documented variable', () => {
    const c = loadConfig({
      DSD_TARGET_URL: 'http://gpu:8000/v1/',
      DSD_TARGET_KIND: 'vllm',
      DSD_TARGET_MODEL: 'big',
      DSD_TARGET_API_KEY: 'tk',
      DSD_DRAFT_URL: 'http://a:1, http://b:2',
      DSD_DRAFT_KIND: 'llamacpp',
      DSD_HOST: '0.0.0.0',
      DSD_PORT: '9000',
      DSD_API_KEY: 'k1,k2',
      DSD_LOG_LEVEL: 'debug',
      DSD_TARGET_HEADERS_TIMEOUT_MS: '1234',
      DSD_BODY_LIMIT_BYTES: '2048',
      DSD_WINDOW: '6',
    });
    expect(c.target).toMatchObject({ urls: ['http://gpu:8000'], kind: 'vllm', model: 'big', apiKey: 'tk' });
    expect(c.target.timeouts.headersTimeoutMs).toBe(1234);
    expect(c.draft.urls).toEqual(['http://a:1', 'http://b:2']);
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      apiKeys: ['k1', 'k2'],
      logLevel: 'debug',
      bodyLimitBytes: 2048,
    });
    expect(c.speculation.window).toBe(6);
  });

  it('DSD_WINDOW is auto by default, a number, or an error that says so', () => {
    expect(loadConfig({}).speculation.window).toBe('auto');
    expect(loadConfig({ DSD_WINDOW: 'auto' }).speculation.window).toBe('auto');
    expect(loadConfig({ DSD_WINDOW: '3' }).speculation.window).toBe(3);
    expect(() => loadConfig({ DSD_WINDOW: 'big' })).toThrow(/DSD_WINDOW="big": expected auto or an integer/);
    expect(loadConfig({}).speculation.aheadDepth).toBe('auto');
    expect(loadConfig({ DSD_DRAFT_AHEAD_DEPTH: '2' }).speculation.aheadDepth).toBe(2);
    expect(loadConfig({ DSD_DRAFT_AHEAD_DEPTH: '0' }).speculation.aheadDepth).toBe(0);
    expect(() => loadConfig({ DSD_DRAFT_AHEAD_DEPTH: '9' })).toThrow(/DSD_DRAFT_AHEAD_DEPTH/);
  });

  it('honours PORT when DSD_PORT is absent', () => {
    expect(loadConfig({ PORT: '7000' }).port).toBe(7000);
    expect(loadConfig({ PORT: '7000', DSD_PORT: '7001' }).port).toBe(7001);
  });

  it('reports every invalid variable at once', () => {
    let error: unknown;
    try {
      loadConfig({
        DSD_PORT: 'abc',
        DSD_TARGET_KIND: 'tgi',
        DSD_TARGET_URL: 'ftp://x',
        DSD_LOG_LEVEL: 'loud',
        DSD_TARGET_CONNECT_TIMEOUT_MS: '-5',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(5);
    for (const name of [
      'DSD_PORT',
      'DSD_TARGET_KIND',
      'DSD_TARGET_URL',
      'DSD_LOG_LEVEL',
      'DSD_TARGET_CONNECT_TIMEOUT_MS',
    ]) {
      expect(problems.some((p) => p.startsWith(name))).toBe(true);
    }
  });

  it('lets options override the environment', () => {
    const c = loadConfig(
      { DSD_TARGET_URL: 'http://env:1', DSD_PORT: '1' },
      { target: { urls: ['http://opt:2/'], timeouts: { bodyTimeoutMs: 5 } }, port: 2 },
    );
    expect(c.target.urls).toEqual(['http://opt:2']);
    expect(c.target.timeouts.bodyTimeoutMs).toBe(5);
    expect(c.target.timeouts.connectTimeoutMs).toBe(5000);
    expect(c.port).toBe(2);
  });

  it('normalizes upstream URLs', () => {
    expect(normalizeUrl('http://h:1/v1')).toBe('http://h:1');
    expect(normalizeUrl('https://h/base/v1/')).toBe('https://h/base');
    expect(normalizeUrl('nope')).toBeUndefined();
  });
});
