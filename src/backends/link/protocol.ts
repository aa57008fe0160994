/**
 * The edge↔verifier link: frames on one WebSocket per edge (JSON text in version 1,
 * `dsd-link.1`; the same frames as MessagePack binary in version 2, `dsd-link.2`:
 * link-codec.ts), many sessions multiplexed by a session id the edge picks. A session holds one
 * generation's context on the verifier; after `open` only deltas cross: the edge says how much of
 * the context the verifier holds to keep (`n`) and what to append (`a`), plus its draft tokens
 * (`d`); the verifier answers with its own token at each scored position. A round the edge sent
 * before the previous verdict (early verification) that the target's own tokens already refute
 * is answered `z: 1` (stale) without evaluating it: the target never spends a step on it. Keys are one letter
 * because these frames are most of the link's traffic.
 */

import { isRecord } from '../http.js';

/** Sampling settings of a session, as they cross the link. */
export interface WireSampling {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
}

/** Frames the edge sends. */
export type EdgeFrame =
  /** `c`: the tenant's cache scope; KV is reused only between sessions of the same scope. */
  | { t: 'open'; s: number; p: number[]; m: WireSampling; n: number; c?: string }
  | { t: 'score'; s: number; r: number; n: number; a: number[]; d: number[] }
  /** `p: 1`: the assisted stream (the target never waits; proposals arrive as `prop` frames). */
  | { t: 'gen'; s: number; r: number; n: number; a: number[]; k: number; p?: 1 }
  /**
   * `b`: a tree's branches off the chain `d`, each [index in d where it leaves, its tokens].
   * `e` (version 3): the chain continues the newest one proposed in the stream: its `e` tokens at
   * positions at−e … at−1 come first, then `d`, so the chain starts at at−e.
   */
  | { t: 'prop'; s: number; r: number; at: number; d: number[]; b?: [number, number[]][]; w?: number; e?: number }
  | { t: 'stop'; s: number; r: number }
  | { t: 'close'; s: number };

/** One scored position: the target's token, its logprob and top alternatives when asked. */
export type WireTop = [id: number, logprob: number][];

/**
 * Token bytes the edge has not been told on this connection yet: [id, base64 bytes] pairs, sent
 * once per token per connection, so the edge never looks a token's text up across the network.
 */
export type WireBytes = [id: number, bytes: string][];

/** Frames the verifier sends. */
export type VerifierFrame =
  | { t: 'scored'; s: number; r: number; x: number[]; l?: (number | null)[]; o?: WireTop[]; z?: 1; b?: WireBytes }
  /**
   * `q`: [draft tokens verified, accepted] when the step used a proposal, plus the draft tokens it
   * declined when a target shared between generations found them not worth its time, and 1 when
   * the drafts it verified were a tree's branch rather than its chain.
   */
  | {
      t: 'tok';
      s: number;
      r: number;
      x: number[];
      l?: (number | null)[];
      o?: WireTop[];
      b?: WireBytes;
      q?: [number, number] | [number, number, number] | [number, number, number, number];
      /** The window the target would verify a step of this stream at now (sent when it changes). */
      k?: number;
    }
  | { t: 'end'; s: number; r: number }
  | { t: 'err'; s?: number; r?: number; code: LinkErrorCode; msg: string }
  /**
   * The verifier is shutting down: it opens no new session and ends the link within `ms`; the
   * edge moves new generations elsewhere (and those still open fail over when the link ends).
   */
  | { t: 'drain'; ms: number };

/** Stable codes of link errors. */
export type LinkErrorCode =
  | 'bad_frame'
  | 'unknown_session'
  | 'session_exists'
  | 'session_limit'
  | 'desync'
  | 'context_overflow'
  | 'engine_error'
  | 'idle_timeout'
  /** An `open` reached a verifier that is shutting down: the edge tries another replica. */
  | 'draining';

/** A frame that failed validation, with the code and message to answer it with. */
export class LinkFrameError extends Error {
  constructor(
    readonly code: LinkErrorCode,
    message: string,
    readonly session?: number,
  ) {
    super(message);
  }
}

const MAX_ID = 2 ** 31 - 1;

function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new LinkFrameError('bad_frame', `'${name}' must be an integer from ${min} to ${max}`);
  return v;
}

function num(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw new LinkFrameError('bad_frame', `'${name}' must be a number from ${min} to ${max}`);
  return v;
}

function ids(v: unknown, name: string, limits: FrameLimits): number[] {
  if (!Array.isArray(v) || v.length > limits.maxTokens)
    throw new LinkFrameError('bad_frame', `'${name}' must be a list of at most ${limits.maxTokens} token ids`);
  for (const id of v)
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limits.vocabSize)
      throw new LinkFrameError(
        'bad_frame',
        `'${name}' holds an id outside the vocabulary (0..${limits.vocabSize - 1})`,
      );
  return v as number[];
}

/** Most branches one proposal tree may carry. */
export const MAX_TREE_BRANCHES = 16;

/** A tree's branches: each leaves the chain of `chain` tokens at an index inside it. */
function branches(v: unknown, chain: number, limits: FrameLimits): [number, number[]][] {
  if (!Array.isArray(v) || v.length > MAX_TREE_BRANCHES)
    throw new LinkFrameError('bad_frame', `'b' must be a list of at most ${MAX_TREE_BRANCHES} branches`);
  return v.map((b, i): [number, number[]] => {
    if (!Array.isArray(b) || b.length !== 2) throw new LinkFrameError('bad_frame', `'b[${i}]' must be [index, tokens]`);
    const from = int(b[0], `b[${i}][0]`, 0, Math.max(0, chain - 1));
    const tokens = ids(b[1], `b[${i}][1]`, { ...limits, maxTokens: limits.maxDraft });
    if (tokens.length === 0) throw new LinkFrameError('bad_frame', `'b[${i}][1]' must hold at least one token`);
    return [from, tokens];
  });
}

/** What a frame may hold. */
export interface FrameLimits {
  vocabSize: number;
  /** Longest token list in one frame (the context length). */
  maxTokens: number;
  /** Most draft tokens in one `score`. */
  maxDraft: number;
}

function sampling(v: unknown): WireSampling {
  if (!isRecord(v)) throw new LinkFrameError('bad_frame', "'m' must be an object of sampling settings");
  return {
    temperature: num(v.temperature, 'm.temperature', 0, 100),
    topP: num(v.topP, 'm.topP', 0, 1),
    topK: int(v.topK, 'm.topK', 0, 1_000_000),
    minP: num(v.minP, 'm.minP', 0, 1),
  };
}

function scope(v: unknown): string {
  if (typeof v !== 'string' || v.length > 64) throw new LinkFrameError('bad_frame', "'c' must be a string of ≤ 64");
  return v;
}

/** Parses and validates one JSON frame from the edge; throws a LinkFrameError naming what is wrong. */
export function parseEdgeFrame(text: string, limits: FrameLimits): EdgeFrame {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new LinkFrameError('bad_frame', 'the frame is not JSON');
  }
  return validateEdgeFrame(v, limits);
}

/**
 * Validates one frame from the edge as decoded (from JSON, or from a binary frame's fields); throws
 * a LinkFrameError naming what is wrong.
 */
export function validateEdgeFrame(v: unknown, limits: FrameLimits): EdgeFrame {
  if (!isRecord(v)) throw new LinkFrameError('bad_frame', 'the frame must be a JSON object');
  const s = int(v.s, 's', 0, MAX_ID);
  try {
    switch (v.t) {
      case 'open': {
        const p = ids(v.p, 'p', limits);
        if (p.length === 0) throw new LinkFrameError('bad_frame', "'p' (the prompt) must not be empty");
        const open = { t: 'open' as const, s, p, m: sampling(v.m), n: int(v.n ?? 0, 'n', 0, 1024) };
        return v.c === undefined ? open : { ...open, c: scope(v.c) };
      }
      case 'score':
        return {
          t: 'score',
          s,
          r: int(v.r, 'r', 0, MAX_ID),
          n: int(v.n, 'n', 0, limits.maxTokens),
          a: ids(v.a, 'a', limits),
          d: ids(v.d, 'd', { ...limits, maxTokens: limits.maxDraft }),
        };
      case 'gen':
        return {
          t: 'gen',
          s,
          r: int(v.r, 'r', 0, MAX_ID),
          n: int(v.n, 'n', 0, limits.maxTokens),
          a: ids(v.a, 'a', limits),
          k: int(v.k, 'k', 1, limits.maxTokens),
          ...(v.p === 1 ? { p: 1 as const } : {}),
        };
      case 'prop': {
        const d = ids(v.d, 'd', { ...limits, maxTokens: limits.maxDraft });
        const at = int(v.at, 'at', 0, limits.maxTokens);
        const e = v.e === undefined ? 0 : int(v.e, 'e', 1, Math.min(limits.maxDraft, at));
        if (e > 0 && d.length === 0)
          throw new LinkFrameError('bad_frame', "a chain continued ('e') needs tokens of its own");
        const frame = {
          t: 'prop' as const,
          s,
          r: int(v.r, 'r', 0, MAX_ID),
          at,
          d,
          ...(v.w === undefined ? {} : { w: int(v.w, 'w', 1, limits.maxDraft) }),
          ...(e > 0 ? { e } : {}),
        };
        // An empty chain with branches: the branches of the chain already sent from `at` (checked there).
        return v.b === undefined
          ? frame
          : { ...frame, b: branches(v.b, d.length === 0 ? limits.maxDraft : e + d.length, limits) };
      }
      case 'stop':
        return { t: 'stop', s, r: int(v.r, 'r', 0, MAX_ID) };
      case 'close':
        return { t: 'close', s };
      default:
        throw new LinkFrameError('bad_frame', `unknown frame type ${JSON.stringify(v.t)}`);
    }
  } catch (err) {
    if (err instanceof LinkFrameError && err.session === undefined) throw new LinkFrameError(err.code, err.message, s);
    throw err;
  }
}
