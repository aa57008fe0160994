import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinkFrameError, parseEdgeFrame } from '../src/backends/link/protocol.js';
import { type DemoBackends, startDemoBackends } from '../src/demo/demo-backends.js';
import { postJson, startTestDsd, type TestDsd } from './helpers/dsd.js';

const MODEL = 'dsd-demo-target';
const LIMITS = { vocabSize: 512, maxTokens: 512, maxDraft: 16 };

/** Request bodies near the valid shape: right and wrong types for every field a client sends. */
const field = fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.string(), fc.integer(), fc.double());
const message = fc.record(
  { role: fc.oneof(fc.constantFrom('system', 'user', 'assistant', 'tool', 'robot'), fc.jsonValue()), content: field },
  { requiredKeys: [] },
);
const body = fc.record(
  {
    model: fc.oneof(fc.constant(MODEL), field),
    messages: fc.oneof(fc.array(message, { maxLength: 3 }), field),
    prompt: fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.integer(), { maxLength: 5 }), field),
    max_tokens: fc.oneof(fc.integer({ min: -5, max: 8 }), field),
    temperature: fc.oneof(fc.double({ min: -1, max: 3, noNaN: true }), field),
    top_p: field,
    top_k: field,
    n: fc.oneof(fc.integer({ min: -1, max: 3 }), field),
    stop: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 5 }), field),
    stream: fc.oneof(fc.boolean(), field),
    logprobs: field,
    seed: field,
    dsd: fc.oneof(fc.record({ speculative: field, window: field }, { requiredKeys: [] }), field),
  },
  { requiredKeys: [] },
);

function envelopeOk(b: unknown): boolean {
  const e = (b as { error?: Record<string, unknown> } | null)?.error;
  return typeof e?.message === 'string' && typeof e.type === 'string' && typeof e.code === 'string' && 'param' in e;
}

/**
 * Property-based bad input (fast-check, a bounded number of cases): whatever a client sends, it
 * gets a success or a 4xx with the OpenAI envelope, never a 5xx or a dropped connection; whatever
 * an edge sends on the link, the frame parses or is refused with a coded LinkFrameError.
 */
describe('bad input, systematically', () => {
  let demo: DemoBackends;
  let dsd: TestDsd;
  beforeAll(async () => {
    demo = await startDemoBackends();
    dsd = await startTestDsd({ target: { urls: [demo.target.url] }, draft: { urls: [demo.draft.url] } });
  });
  afterAll(async () => {
    await dsd?.close();
    await demo?.close();
  });

  for (const route of ['chat/completions', 'completions'] as const) {
    it(`/v1/${route}: every generated body gets 200 or a 4xx envelope`, async () => {
      await fc.assert(
        fc.asyncProperty(body, async (b) => {
          const r = await postJson(`${dsd.baseUrl}/v1/${route}`, JSON.stringify(b));
          if (r.status === 200) return;
          expect(r.status, JSON.stringify(b)).toBeGreaterThanOrEqual(400);
          expect(r.status, JSON.stringify(b)).toBeLessThan(500);
          expect(envelopeOk(r.body), JSON.stringify(r.body)).toBe(true);
        }),
        { numRuns: 60, seed: 42 },
      );
    });
  }

  it('raw bytes that are not JSON get 400 invalid_json', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 60 }), async (text) => {
        let isJson = true;
        try {
          JSON.parse(text);
        } catch {
          isJson = false;
        }
        fc.pre(!isJson);
        const r = await postJson(`${dsd.baseUrl}/v1/chat/completions`, text);
        expect(r.status).toBe(400);
        expect(r.body.error.code).toBe('invalid_json');
      }),
      { numRuns: 40, seed: 7 },
    );
  });

  it('link frames: any text parses to a frame or is refused with a coded LinkFrameError', () => {
    const frame = fc.record(
      {
        t: fc.oneof(fc.constantFrom('open', 'score', 'gen', 'prop', 'stop', 'close'), fc.jsonValue()),
        s: fc.oneof(fc.nat(), fc.jsonValue()),
        r: fc.oneof(fc.nat(), fc.jsonValue()),
        n: fc.oneof(fc.nat({ max: 600 }), fc.jsonValue()),
        a: fc.oneof(fc.array(fc.integer({ min: -2, max: 600 }), { maxLength: 20 }), fc.jsonValue()),
        d: fc.oneof(fc.array(fc.integer({ min: -2, max: 600 }), { maxLength: 20 }), fc.jsonValue()),
        p: fc.oneof(fc.array(fc.integer({ min: -2, max: 600 }), { maxLength: 20 }), fc.jsonValue()),
        k: fc.oneof(fc.integer({ min: -2, max: 600 }), fc.jsonValue()),
        at: fc.oneof(fc.nat({ max: 600 }), fc.jsonValue()),
        m: fc.oneof(
          fc.record({ temperature: fc.double(), topP: fc.double(), topK: fc.integer(), minP: fc.double() }),
          fc.jsonValue(),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          frame.map((f) => JSON.stringify(f)),
          fc.string(),
        ),
        (text) => {
          try {
            const f = parseEdgeFrame(text, LIMITS);
            expect(['open', 'score', 'gen', 'prop', 'stop', 'close']).toContain(f.t);
          } catch (err) {
            expect(err).toBeInstanceOf(LinkFrameError);
            expect((err as LinkFrameError).code).toMatch(/^[a-z_]+$/);
          }
        },
      ),
      { numRuns: 2000, seed: 1 },
    );
  });
});
