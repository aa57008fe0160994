/**
 * How link frames are put on the wire. Version 1 (`dsd-link.1`) sends each frame as JSON text;
 * version 2 (`dsd-link.2`) sends the same frames as MessagePack binary, each a positional array
 * `[type code, field, field, …]` with no keys (absent fields are nil, trailing ones dropped) and
 * token bytes as raw binary instead of base64. The link's traffic is mostly small `tok` and
 * `prop` frames whose keys and decimal ids are most of their JSON, so version 2 carries them in
 * about a third of the bytes. Version 3 (`dsd-link.3`) is version 2 whose proposals may continue
 * the chain before them (only new draft tokens cross). An edge offers every version and the
 * verifier picks the newest it speaks, so an edge and a verifier of different releases still meet.
 */

import { Decoder, Encoder } from '@msgpack/msgpack';
import {
  type EdgeFrame,
  type FrameLimits,
  LinkFrameError,
  parseEdgeFrame,
  type VerifierFrame,
  validateEdgeFrame,
} from './protocol.js';

/** What a link's frames are encoded as. */
export type LinkEncoding = 'binary' | 'json';

/** One version of the link: its WebSocket subprotocol, its encoding, and what its frames may say. */
export interface LinkVersion {
  subprotocol: string;
  encoding: LinkEncoding;
  /**
   * A `prop` may continue the newest chain (`e`): the tokens it repeats stay on the verifier and
   * only the new ones cross. A verifier before version 3 would read such a frame as a chain of its
   * new tokens alone, so an edge sends `e` only where version 3 was agreed.
   */
  continuedChains: boolean;
}

/** The link's versions, most preferred first. */
export const LINK_VERSIONS: readonly LinkVersion[] = [
  { subprotocol: 'dsd-link.3', encoding: 'binary', continuedChains: true },
  { subprotocol: 'dsd-link.2', encoding: 'binary', continuedChains: false },
  { subprotocol: 'dsd-link.1', encoding: 'json', continuedChains: false },
];

/** The subprotocols an edge offers for an encoding, most preferred first. */
export function offeredSubprotocols(encoding: LinkEncoding): string[] {
  return LINK_VERSIONS.filter((v) => encoding === 'binary' || v.encoding === encoding).map((v) => v.subprotocol);
}

/** The version a negotiated subprotocol names, if it is one of the link's. */
export function versionOf(subprotocol: string): LinkVersion | undefined {
  return LINK_VERSIONS.find((v) => v.subprotocol === subprotocol);
}

/** The verifier's choice among the subprotocols an edge offers: the newest version offered. */
export function chooseSubprotocol(offered: ReadonlySet<string>): string | undefined {
  return LINK_VERSIONS.find((v) => offered.has(v.subprotocol))?.subprotocol;
}

/** One frame's payload: text for version 1, bytes for version 2. */
export type LinkPayload = string | Uint8Array;

/** Encodes and decodes the frames of one connection. */
export interface LinkCodec {
  readonly encoding: LinkEncoding;
  encodeEdge(frame: EdgeFrame): LinkPayload;
  /** Validates as it decodes; throws a LinkFrameError naming what is wrong. */
  decodeEdge(data: Buffer, isBinary: boolean, limits: FrameLimits): EdgeFrame;
  encodeVerifier(frame: VerifierFrame): LinkPayload;
  /** Undefined for a payload that is not a frame (the edge trusts its verifier's frames' shape). */
  decodeVerifier(data: Buffer, isBinary: boolean): VerifierFrame | undefined;
}

/** Bytes of a payload on the wire, before the WebSocket frame's header. */
export function payloadBytes(p: LinkPayload): number {
  // The link's JSON is ASCII but for error messages and cache scopes, which are rare.
  return typeof p === 'string' ? p.length : p.byteLength;
}

// Field order of each frame type in version 2; a type's code is its index in its direction's list.
// A decoder ignores fields past the ones it knows, as JSON's parser ignores keys it does not know, so
// appending a field keeps version 2 readable by older peers; reordering or removing one does not.
const EDGE_FIELDS = {
  open: ['s', 'p', 'm', 'n', 'c'],
  score: ['s', 'r', 'n', 'a', 'd'],
  gen: ['s', 'r', 'n', 'a', 'k', 'p'],
  prop: ['s', 'r', 'at', 'd', 'w', 'b', 'e'],
  stop: ['s', 'r'],
  close: ['s'],
} as const satisfies Record<EdgeFrame['t'], readonly string[]>;
const VERIFIER_FIELDS = {
  scored: ['s', 'r', 'x', 'l', 'o', 'z', 'b'],
  tok: ['s', 'r', 'x', 'q', 'l', 'o', 'b', 'k'],
  end: ['s', 'r'],
  err: ['s', 'r', 'code', 'msg'],
  drain: ['ms'],
} as const satisfies Record<VerifierFrame['t'], readonly string[]>;
const EDGE_TYPES = Object.keys(EDGE_FIELDS) as EdgeFrame['t'][];
const VERIFIER_TYPES = Object.keys(VERIFIER_FIELDS) as VerifierFrame['t'][];

const encoder = new Encoder({ ignoreUndefined: true });

/**
 * Token ids as LEB128 varints in one MessagePack bin: 1 byte below 128, 2 below 16,384, 3 below
 * 2,097,152, where a MessagePack integer takes 3 from 256 on. Drafts are most of the link's bytes;
 * a list crosses in whichever form is smaller, and either decodes.
 */
export function packIds(ids: readonly number[]): Uint8Array {
  const out = new Uint8Array(ids.length * 5);
  let at = 0;
  for (const id of ids) {
    let v = id >>> 0;
    while (v >= 0x80) {
      out[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    out[at++] = v;
  }
  return out.subarray(0, at);
}

/** Token ids in whichever of a MessagePack array and packIds's bin is smaller (one id: often the array). */
function compactIds(ids: readonly number[]): readonly number[] | Uint8Array {
  const packed = packIds(ids);
  let asArray = ids.length < 16 ? 1 : 3;
  for (const id of ids) asArray += id < 128 ? 1 : id < 256 ? 2 : id < 65_536 ? 3 : 5;
  const asBin = packed.length + (packed.length < 256 ? 2 : 3);
  return asBin < asArray ? packed : ids;
}

/** The ids of packIds; undefined for bytes that are not whole varints of at most 32 bits. */
export function unpackIds(bytes: Uint8Array): number[] | undefined {
  const ids: number[] = [];
  let v = 0;
  let shift = 0;
  for (const b of bytes) {
    if (shift > 28) return undefined;
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      ids.push(v);
      v = 0;
      shift = 0;
    } else shift += 7;
  }
  return shift === 0 ? ids : undefined;
}

/** How each direction's fields cross in version 2, where they differ from their JSON value. */
type Transform = (type: string, field: string, value: unknown) => unknown;
/** The edge's token lists: the prompt of `open`, the appended and drafted tokens of the others. */
const edgeIds = (t: string, f: string) => (t === 'open' ? f === 'p' : f === 'a' || f === 'd');
const packEdge: Transform = (t, f, v) => {
  if (edgeIds(t, f)) return compactIds(v as number[]);
  if (t === 'prop' && f === 'b') return (v as [number, number[]][]).map(([from, ids]) => [from, compactIds(ids)]);
  return v;
};
const unpackEdge: Transform = (t, f, v) => {
  if (edgeIds(t, f)) return unpackOrKeep(v);
  if (t === 'prop' && f === 'b' && Array.isArray(v))
    return v.map((e: unknown) => (Array.isArray(e) && e.length === 2 ? [e[0], unpackOrKeep(e[1])] : e));
  return v;
};
// Token bytes go raw: base64 is only JSON's way of carrying them, a third larger.
const packVerifier: Transform = (_t, f, v) => {
  if (f === 'x') return compactIds(v as number[]);
  if (f === 'b') return (v as [number, string][]).map(([id, b64]) => [id, Buffer.from(b64, 'base64')]);
  return v;
};
const unpackVerifier: Transform = (_t, f, v) => {
  if (f === 'x') return unpackOrKeep(v);
  if (f === 'b' && Array.isArray(v))
    return v.map((e: unknown) =>
      Array.isArray(e) && e[1] instanceof Uint8Array ? [e[0], Buffer.from(e[1]).toString('base64')] : e,
    );
  return v;
};

/** Packed ids unpacked; anything else as it came, for the validator to judge. */
function unpackOrKeep(v: unknown): unknown {
  if (!(v instanceof Uint8Array)) return v;
  const ids = unpackIds(v);
  if (ids === undefined) throw new LinkFrameError('bad_frame', 'a token list holds a broken varint');
  return ids;
}

/** The fields of each frame type of one direction, and the types in code order. */
interface Direction {
  types: readonly string[];
  fieldsOf: Readonly<Record<string, readonly string[]>>;
}

function toTuple(direction: Direction, frame: Record<string, unknown>, pack: Transform): unknown[] {
  const t = frame.t as string;
  const tuple: unknown[] = [direction.types.indexOf(t)];
  for (const f of direction.fieldsOf[t] ?? []) {
    const v = frame[f];
    tuple.push(v === undefined ? null : pack(t, f, v));
  }
  while (tuple.length > 1 && tuple[tuple.length - 1] === null) tuple.pop();
  return tuple;
}

/** A version 2 frame back to the record its JSON would be (nil fields absent); undefined if not one. */
function fromTuple(v: unknown, direction: Direction, unpack: Transform): Record<string, unknown> | undefined {
  if (!Array.isArray(v) || typeof v[0] !== 'number') return undefined;
  const t = direction.types[v[0]];
  const fields = t === undefined ? undefined : direction.fieldsOf[t];
  if (t === undefined || fields === undefined) return undefined;
  const frame: Record<string, unknown> = { t };
  fields.forEach((f, i) => {
    const value = v[i + 1];
    if (value !== null && value !== undefined) frame[f] = unpack(t, f, value);
  });
  return frame;
}

const EDGE: Direction = { types: EDGE_TYPES, fieldsOf: EDGE_FIELDS };
const VERIFIER: Direction = { types: VERIFIER_TYPES, fieldsOf: VERIFIER_FIELDS };

/** A decoder bounded by the frame limits, so a hostile frame cannot ask for more than they allow. */
function boundedDecoder(limits: FrameLimits | undefined): Decoder {
  const most = limits === undefined ? 1 << 24 : Math.max(limits.maxTokens, 64);
  return new Decoder({ maxArrayLength: most, maxStrLength: 1 << 16, maxBinLength: most * 5, maxMapLength: 16 });
}

const JSON_CODEC: LinkCodec = {
  encoding: 'json',
  encodeEdge: (frame) => JSON.stringify(frame),
  decodeEdge: (data, isBinary, limits) => {
    if (isBinary) throw new LinkFrameError('bad_frame', 'link version 1 frames are JSON text');
    return parseEdgeFrame(data.toString('utf8'), limits);
  },
  encodeVerifier: (frame) => JSON.stringify(frame),
  decodeVerifier: (data) => {
    try {
      return JSON.parse(data.toString('utf8')) as VerifierFrame;
    } catch {
      return undefined;
    }
  },
};

function binaryCodec(): LinkCodec {
  // A connection decodes under one set of limits: its decoder is made once, for them.
  let edgeDecoder: { limits: FrameLimits; decoder: Decoder } | undefined;
  const verifierDecoder = boundedDecoder(undefined);
  return {
    encoding: 'binary',
    encodeEdge: (frame) => encoder.encode(toTuple(EDGE, frame, packEdge)),
    decodeEdge: (data, isBinary, limits) => {
      if (!isBinary) throw new LinkFrameError('bad_frame', 'link version 2 frames are binary (MessagePack)');
      if (edgeDecoder?.limits !== limits) edgeDecoder = { limits, decoder: boundedDecoder(limits) };
      let v: unknown;
      try {
        v = edgeDecoder.decoder.decode(data);
      } catch (err) {
        throw new LinkFrameError('bad_frame', `the frame is not MessagePack: ${(err as Error).message}`);
      }
      const frame = fromTuple(v, EDGE, unpackEdge);
      if (frame === undefined) throw new LinkFrameError('bad_frame', 'the frame must be [type code, fields…]');
      return validateEdgeFrame(frame, limits);
    },
    encodeVerifier: (frame) => encoder.encode(toTuple(VERIFIER, frame, packVerifier)),
    decodeVerifier: (data, isBinary) => {
      if (!isBinary) return undefined;
      try {
        return fromTuple(verifierDecoder.decode(data), VERIFIER, unpackVerifier) as VerifierFrame | undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/** The codec of an encoding (a fresh one per connection: its decoders are its own). */
export function linkCodec(encoding: LinkEncoding): LinkCodec {
  return encoding === 'json' ? JSON_CODEC : binaryCodec();
}
