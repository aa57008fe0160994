import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chooseSubprotocol,
  type LinkEncoding,
  linkCodec,
  offeredSubprotocols,
  packIds,
  payloadBytes,
  unpackIds,
  versionOf,
} from '../src/backends/link/link-codec.js';
import { type EdgeFrame, LinkFrameError, type VerifierFrame } from '../src/backends/link/protocol.js';

const LIMITS = { vocabSize: 32_000, maxTokens: 2048, maxDraft: 16 };
const id = fc.integer({ min: 0, max: LIMITS.vocabSize - 1 });
const ids = (maxLength: number, minLength = 0) => fc.array(id, { minLength, maxLength });
const small = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const sampling = fc.record({
  temperature: fc.double({ min: 0, max: 2, noNaN: true }),
  topP: fc.double({ min: 0, max: 1, noNaN: true }),
  topK: fc.integer({ min: 0, max: 100 }),
  minP: fc.double({ min: 0, max: 1, noNaN: true }),
});

/** Every edge frame the validator accepts (the field ranges it checks). */
const edgeFrame: fc.Arbitrary<EdgeFrame> = fc.oneof(
  fc.record(
    {
      t: fc.constant('open' as const),
      s: small,
      p: ids(40, 1),
      m: sampling,
      n: fc.nat(1024),
      c: fc.string({ maxLength: 64 }),
    },
    { requiredKeys: ['t', 's', 'p', 'm', 'n'] },
  ),
  fc.record({ t: fc.constant('score' as const), s: small, r: small, n: fc.nat(2048), a: ids(20), d: ids(16) }),
  fc.record(
    {
      t: fc.constant('gen' as const),
      s: small,
      r: small,
      n: fc.nat(2048),
      a: ids(20),
      k: fc.integer({ min: 1, max: 2048 }),
      p: fc.constant(1 as const),
    },
    { requiredKeys: ['t', 's', 'r', 'n', 'a', 'k'] },
  ),
  fc.tuple(ids(16, 1), fc.integer({ min: 1, max: 2048 })).chain(([d, at]) =>
    fc.record(
      {
        t: fc.constant('prop' as const),
        s: small,
        r: small,
        at: fc.constant(at),
        d: fc.constant(d),
        w: fc.integer({ min: 1, max: 16 }),
        b: fc.array(fc.tuple(fc.nat(d.length - 1), ids(16, 1)), { maxLength: 4 }),
        e: fc.integer({ min: 1, max: Math.min(16, at) }),
      },
      { requiredKeys: ['t', 's', 'r', 'at', 'd'] },
    ),
  ),
  fc.record({ t: fc.constant('stop' as const), s: small, r: small }),
  fc.record({ t: fc.constant('close' as const), s: small }),
);

const logprob = fc.double({ min: -30, max: 0, noNaN: true }).map((x) => x + 0); // no -0: JSON has none
const b64 = fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => Buffer.from(b).toString('base64'));
const verifierFrame: fc.Arbitrary<VerifierFrame> = fc.oneof(
  fc.record(
    {
      t: fc.constant('tok' as const),
      s: small,
      r: small,
      x: ids(4, 1),
      q: fc.oneof(fc.tuple(fc.nat(16), fc.nat(16)), fc.tuple(fc.nat(16), fc.nat(16), fc.nat(16), fc.constant(1))),
      l: fc.array(fc.option(logprob, { nil: null }), { maxLength: 4 }),
      o: fc.array(fc.array(fc.tuple(id, logprob), { maxLength: 3 }), { maxLength: 4 }),
      b: fc.array(fc.tuple(id, b64), { maxLength: 3 }),
      k: fc.integer({ min: 1, max: 16 }),
    },
    { requiredKeys: ['t', 's', 'r', 'x'] },
  ),
  fc.record(
    { t: fc.constant('scored' as const), s: small, r: small, x: ids(17), z: fc.constant(1 as const) },
    { requiredKeys: ['t', 's', 'r', 'x'] },
  ),
  fc.record({ t: fc.constant('end' as const), s: small, r: small }),
  fc.record(
    { t: fc.constant('err' as const), s: small, r: small, code: fc.constant('desync' as const), msg: fc.string() },
    { requiredKeys: ['t', 'code', 'msg'] },
  ),
  fc.record({ t: fc.constant('drain' as const), ms: fc.nat(60_000) }),
);

const wire = (p: string | Uint8Array) => ({ data: Buffer.from(p), isBinary: typeof p !== 'string' });

describe('the link codecs', () => {
  it.each(['binary', 'json'] as const)(
    '%s: every edge frame decodes to itself, validated',
    (encoding: LinkEncoding) => {
      const codec = linkCodec(encoding);
      fc.assert(
        fc.property(edgeFrame, (frame) => {
          const { data, isBinary } = wire(codec.encodeEdge(frame));
          expect(codec.decodeEdge(data, isBinary, LIMITS)).toEqual(frame);
        }),
        { numRuns: 300, seed: 7 },
      );
    },
  );

  it.each(['binary', 'json'] as const)('%s: every verifier frame decodes to itself', (encoding: LinkEncoding) => {
    const codec = linkCodec(encoding);
    fc.assert(
      fc.property(verifierFrame, (frame) => {
        const { data, isBinary } = wire(codec.encodeVerifier(frame));
        expect(codec.decodeVerifier(data, isBinary)).toEqual(frame);
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it('binary carries the stream’s frames in well under half of JSON’s bytes', () => {
    const json = linkCodec('json');
    const binary = linkCodec('binary');
    const tok: VerifierFrame = { t: 'tok', s: 3, r: 12, x: [21_937], q: [4, 3] };
    const prop: EdgeFrame = { t: 'prop', s: 3, r: 12, at: 345, d: [13_012, 290, 7_411, 31_999], w: 4 };
    const branch: EdgeFrame = { t: 'prop', s: 3, r: 12, at: 345, d: [], b: [[1, [977, 3_050]]] };
    const size = (p: string | Uint8Array) => payloadBytes(p);
    // JSON: 46, 67 and 62 bytes; MessagePack with positions for keys and varint ids: 12, 19 and 19.
    expect(size(binary.encodeVerifier(tok))).toBeLessThanOrEqual(size(json.encodeVerifier(tok)) * 0.35);
    expect(size(binary.encodeEdge(prop))).toBeLessThanOrEqual(size(json.encodeEdge(prop)) * 0.45);
    expect(size(binary.encodeEdge(branch))).toBeLessThanOrEqual(size(json.encodeEdge(branch)) * 0.35);
  });

  it('binary frames are validated like JSON ones: bad ones throw a coded error', () => {
    const binary = linkCodec('binary');
    const bad =
      (data: Buffer, isBinary = true) =>
      () =>
        binary.decodeEdge(data, isBinary, LIMITS);
    const encoded = (v: unknown) => Buffer.from(linkCodec('binary').encodeVerifier(v as VerifierFrame));
    expect(bad(Buffer.from([0xc1]))).toThrow(LinkFrameError); // 0xc1 is never used in MessagePack
    expect(bad(Buffer.from('{"t":"close","s":1}'), false)).toThrow(/binary/);
    // A drain frame's shape [4, ms] reads as the edge's `stop` without its `r`.
    expect(bad(encoded({ t: 'drain', ms: 5 }))).toThrow(/'r'/);
    const score = Buffer.from(binary.encodeEdge({ t: 'score', s: 1, r: 1, n: 0, a: [], d: [LIMITS.vocabSize - 1] }));
    expect(binary.decodeEdge(score, true, LIMITS)).toMatchObject({ t: 'score', d: [LIMITS.vocabSize - 1] });
    const outside = { ...LIMITS, vocabSize: LIMITS.vocabSize - 1 };
    expect(() => binary.decodeEdge(score, true, outside)).toThrow(/vocabulary/);
    expect(() => linkCodec('json').decodeEdge(score, true, LIMITS)).toThrow(/JSON text/);
    expect(bad(Buffer.from([0x91, 0x63]))).toThrow(/type code/);
    // Fields past the known ones are ignored (a newer peer's), as JSON ignores keys it does not know.
    expect(binary.decodeEdge(Buffer.from([0x94, 5, 1, 7, 7]), true, LIMITS)).toEqual({ t: 'close', s: 1 });
    try {
      bad(Buffer.from([0xc1]))();
    } catch (err) {
      expect((err as LinkFrameError).code).toBe('bad_frame');
    }
  });

  it('token ids cross as varints: 1 byte below 128, 2 below 16,384, 3 below 2,097,152; broken ones are refused', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 40 }), (list) => {
        expect(unpackIds(packIds(list))).toEqual(list);
      }),
      { numRuns: 300, seed: 3 },
    );
    expect(packIds([0, 127, 128, 16_383, 16_384, 2_097_151]).length).toBe(1 + 1 + 2 + 2 + 3 + 3);
    expect(unpackIds(Uint8Array.from([0x80]))).toBeUndefined(); // truncated
    expect(unpackIds(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBeUndefined(); // past 32 bits
    // [1 (score), s 1, r 1, n 0, a: empty bin, d: a bin of one truncated varint]
    const frame = Buffer.from([0x96, 1, 1, 1, 0, 0xc4, 0, 0xc4, 1, 0x80]);
    expect(() => linkCodec('binary').decodeEdge(frame, true, LIMITS)).toThrow(/varint/);
  });

  it('a verifier picks the newest version offered: an edge of an older release still meets it', () => {
    expect(offeredSubprotocols('binary')).toEqual(['dsd-link.3', 'dsd-link.2', 'dsd-link.1']);
    expect(chooseSubprotocol(new Set(offeredSubprotocols('binary')))).toBe('dsd-link.3');
    expect(chooseSubprotocol(new Set(['dsd-link.2', 'dsd-link.1']))).toBe('dsd-link.2');
    expect(chooseSubprotocol(new Set(offeredSubprotocols('json')))).toBe('dsd-link.1');
    expect(chooseSubprotocol(new Set(['graphql-ws']))).toBeUndefined();
    expect(versionOf('dsd-link.3')).toMatchObject({ encoding: 'binary', continuedChains: true });
    expect(versionOf('dsd-link.2')).toMatchObject({ encoding: 'binary', continuedChains: false });
    expect(versionOf('dsd-link.1')).toMatchObject({ encoding: 'json', continuedChains: false });
    expect(versionOf('')).toBeUndefined();
  });

  it('a continued chain needs tokens of its own and cannot reach before the context', () => {
    const codec = linkCodec('json');
    const frame = (f: object) => Buffer.from(JSON.stringify({ t: 'prop', s: 1, r: 1, ...f }));
    expect(codec.decodeEdge(frame({ at: 9, d: [4], e: 3 }), false, LIMITS)).toMatchObject({ at: 9, d: [4], e: 3 });
    expect(() => codec.decodeEdge(frame({ at: 9, d: [], e: 3 }), false, LIMITS)).toThrow(/tokens of its own/);
    expect(() => codec.decodeEdge(frame({ at: 2, d: [4], e: 3 }), false, LIMITS)).toThrow(/'e'/);
    expect(() => codec.decodeEdge(frame({ at: 90, d: [4], e: 17 }), false, LIMITS)).toThrow(/'e'/);
  });
});
