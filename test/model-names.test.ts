import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { acceptsModel, servedModelName } from '../src/server/model-names.js';

describe('model names', () => {
  const names = (env: Record<string, string>) => loadConfig({ DSD_TARGET_URL: 'http://t:1', ...env }).models;

  it('the served name defaults to the target name without a filesystem path', () => {
    expect(servedModelName(names({}), '/models/llama/stories260K-f32.gguf')).toBe('stories260K-f32.gguf');
    expect(servedModelName(names({}), 'meta-llama/Llama-3.1-8B')).toBe('Llama-3.1-8B');
    expect(servedModelName(names({ DSD_SERVED_MODEL_NAME: 'tiny' }), '/m/x.gguf')).toBe('tiny');
  });

  it('DSD_MODEL_ALIASES takes NAME=target pairs and bare names; anything else is a config error', () => {
    const n = names({ DSD_MODEL_ALIASES: 'gpt-4o-mini=target, gpt-3.5-turbo' });
    expect(n.aliases).toEqual(['gpt-4o-mini', 'gpt-3.5-turbo']);
    expect(acceptsModel(n, '/m/x.gguf', 'gpt-4o-mini')).toBe(true);
    expect(acceptsModel(n, '/m/x.gguf', 'x.gguf')).toBe(true);
    expect(acceptsModel(n, '/m/x.gguf', '/m/x.gguf')).toBe(true);
    expect(acceptsModel(n, '/m/x.gguf', 'gpt-4o')).toBe(false);
    expect(() => names({ DSD_MODEL_ALIASES: 'a=draft' })).toThrow(/DSD_MODEL_ALIASES: "a=draft" is not NAME=target/);
    expect(() => names({ DSD_ACCEPT_ANY_MODEL: 'yes' })).toThrow(/DSD_ACCEPT_ANY_MODEL/);
  });
});
