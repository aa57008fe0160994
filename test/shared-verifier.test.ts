import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { type LinkEncoding, linkCodec } from '../src/backends/link/link-codec.js';
import type { EdgeFrame, VerifierFrame } from '../src/backends/link/protocol.js';
import { PooledState } from '../src/engine/sequence-pool.js';
import type { EngineSequence, TargetEngine } from '../src/engine/types.js';
import { createLogger } from '../src/logger.js';
import type { BatchCost } from '../src/speculative/batch-window.js';
import type { GeneratedToken } from '../src/speculative/types.js';
import { LinkConnection } from '../src/verifier/link/link-connection.js';
import { emptyLinkStats } from '../src/verifier/link/link-server.js';
import type { LinkStats } from '../src/verifier/link/types.js';

/**
 * A target whose own token after any context is its length mod 50 + 100, so a draft is right where
 * it guesses that: the edge below guesses the first 2 of its 4 drafts right and the rest wrong.
 */
const own = (length: number) => (length % 50) + 100;

class FakeSequence extends PooledState implements EngineSequence {
  async evaluate(from: number, tokens: readonly number[], positions: number): Promise<GeneratedToken[]> {
    this.held.length = from;
    this.held.push(...tokens);
    const first = this.held.length - positions;
    return Array.from({ length: positions }, (_, i) => ({ id: own(first + i + 1) }));
  }
}

/** The same target taking 2 ms a step, so proposals sent after each token can line up with it. */
class SlowSequence extends FakeSequence {
  override async evaluate(from: number, tokens: readonly number[], positions: number): Promise<GeneratedToken[]> {
    await new Promise((r) => setTimeout(r, 2));
    return super.evaluate(from, tokens, positions);
  }
}

function fakeEngine(cost: BatchCost, sequence: () => EngineSequence = () => new FakeSequence()): TargetEngine {
  const info = { modelName: 'fake', contextTokens: 4096, bosId: 1, eosId: 2, vocabSize: 512, sequences: 1 };
  return {
    info: { ...info, maxPositions: 64, build: 'http', engine: 'http', backend: 'http', device: 'fake' },
    tokenize: async () => [],
    detokenize: async () => '',
    tokenBytes: async () => new Uint8Array([120]),
    chatPromptIds: async () => [],
    acquire: async () => sequence(),
    load: () => ({ busy: 1, idle: 0, waiting: 0, reusedPrefixTokens: 0, evaluations: 0, evaluatedSteps: 0 }),
    batchCost: () => cost,
    close: async () => {},
  };
}

/** The link server's options around a fake engine. */
function linkOptions(engine: TargetEngine) {
  return {
    engine,
    keys: [],
    maxSessionsPerConnection: 4,
    maxFrameBytes: 1 << 20,
    idleTimeoutMs: 60_000,
    maxDraftTokens: 16,
    logger: createLogger('silent'),
  };
}

/** Runs 12 rounds of 4 drafts (the first 2 right) and returns the positions each verdict scored. */
async function rounds(
  cost: BatchCost,
  encoding: LinkEncoding = 'json',
): Promise<{ positions: number[]; stats: LinkStats }> {
  const codec = linkCodec(encoding);
  const frames: { t: string; x?: number[] }[] = [];
  const receive = (p: string | Uint8Array) =>
    frames.push(codec.decodeVerifier(Buffer.from(p), typeof p !== 'string') as { t: string; x?: number[] });
  const ws = { OPEN: 1, readyState: 1, send: receive };
  const stats = { ...emptyLinkStats(), connections: 1 };
  const link = new LinkConnection(ws as unknown as WebSocket, linkOptions(fakeEngine(cost)), { stats, encoding });
  const send = (f: EdgeFrame) => {
    const payload = codec.encodeEdge(f);
    link.receive(Buffer.from(payload), typeof payload !== 'string');
  };
  const ctx = [1, 5, 6];
  send({ t: 'open', s: 1, p: ctx, m: { temperature: 0, topP: 1, topK: 0, minP: 0 }, n: 0 });
  let held = ctx.length;
  for (let r = 1; r <= 12; r++) {
    const before = frames.length;
    const drafts = [own(ctx.length), own(ctx.length + 1), 7, 7];
    // Keep what the verifier holds, append what was committed since: the link's delta.
    send({ t: 'score', s: 1, r, n: held, a: ctx.slice(held), d: drafts });
    held = ctx.length;
    for (let i = 0; i < 200 && frames.length === before; i++) await new Promise((res) => setImmediate(res));
    const verdict = frames.at(-1)?.x ?? [];
    // Commit as the edge does: the accepted drafts, then the target's own token after them.
    let accepted = 0;
    while (accepted < verdict.length - 1 && drafts[accepted] === verdict[accepted]) accepted += 1;
    ctx.push(...drafts.slice(0, accepted), verdict[accepted] ?? 0);
  }
  link.closeAll();
  return { positions: frames.filter((f) => f.t === 'scored').map((f) => f.x?.length ?? 0), stats };
}

describe('a verifier shared between generations', () => {
  it('alone on its target it verifies every draft the edge sent', async () => {
    const { positions, stats } = await rounds({ fixedMs: 7, positionMs: 2.3, peers: 0 });
    expect(positions).toEqual(Array(12).fill(5));
    expect(stats.unverifiedDraftTokens).toBe(0);
  });

  it.each(['json', 'binary'] as const)(
    'with 15 peers in its batches, once it has learned the edge, it verifies only the drafts that pay (%s link)',
    async (encoding) => {
      const { positions, stats } = await rounds({ fixedMs: 7, positionMs: 2.3, peers: 15 }, encoding);
      // Learning first (until the fading weight of what it saw reaches 8: 9 proposals), then fewer
      // positions. By hand, with the estimate's shrinkage toward the pooled rate: α ≈ 0.89, 0.89, 0.22,
      // then E(j)/((j+1)·2.3 + 7/16) is 0.365, 0.375, 0.365, 0.296 for j = 0…3: one draft, two positions.
      expect(positions.slice(0, 9)).toEqual(Array(9).fill(5));
      expect(positions.slice(9)).toEqual([2, 2, 2]);
      expect(stats.unverifiedDraftTokens).toBe(9);
      expect(stats.draftTokens + stats.unverifiedDraftTokens).toBe(48);
    },
  );
});

describe('a stream on the verifier', () => {
  /** A stream of 200 tokens whose edge proposes 6 drafts, the first `right` of them right, after each chunk. */
  async function told(right: number): Promise<number | undefined> {
    const codec = linkCodec('binary');
    const frames: VerifierFrame[] = [];
    const ctx = [1, 5, 6];
    let link: LinkConnection | undefined;
    const send = (f: EdgeFrame) => link?.receive(Buffer.from(codec.encodeEdge(f)), true);
    const ws = {
      OPEN: 1,
      readyState: 1,
      send: (p: Uint8Array) => {
        const f = codec.decodeVerifier(Buffer.from(p), true);
        if (f === undefined) return;
        frames.push(f);
        if (f.t !== 'tok') return;
        ctx.push(...f.x);
        const at = ctx.length;
        const d = Array.from({ length: 6 }, (_, i) => (i < right ? own(at + i) : 7));
        setImmediate(() => send({ t: 'prop', s: 1, r: 1, at, d, w: 16 }));
      },
    };
    const options = linkOptions(fakeEngine({ fixedMs: 7, positionMs: 2.3, peers: 0 }, () => new SlowSequence()));
    link = new LinkConnection(ws as unknown as WebSocket, options, { stats: emptyLinkStats(), encoding: 'binary' });
    send({ t: 'open', s: 1, p: [...ctx], m: { temperature: 0, topP: 1, topK: 0, minP: 0 }, n: 0 });
    send({ t: 'gen', s: 1, r: 1, n: ctx.length, a: [], k: 200, p: 1 });
    for (let i = 0; i < 2000 && !frames.some((f) => f.t === 'end'); i++) await new Promise((r) => setTimeout(r, 1));
    link.closeAll();
    // The stream's text is the target's own whatever was proposed.
    expect(ctx.slice(3, 20)).toEqual(Array.from({ length: 17 }, (_, i) => own(3 + i)));
    return frames
      .filter((f) => f.t === 'tok' && f.k !== undefined)
      .map((f) => (f.t === 'tok' ? f.k : 0))
      .at(-1);
  }

  it('tells the edge the window it would verify at: all 16 for drafts always right, 1 or 2 for two right', async () => {
    // On 7 ms + 2.3 a position: with every draft right E(j) = j + 1 grows faster than the step's
    // time, so all 16 the link allows. With two right, E stops at 3: j* = 2 for a proposal used from
    // its first draft, and less where the target had passed a token before it arrived.
    expect(await told(6)).toBe(16);
    const two = await told(2);
    expect(two).toBeGreaterThanOrEqual(1);
    expect(two).toBeLessThanOrEqual(2);
  });
});
