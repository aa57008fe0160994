import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { linkCodec, offeredSubprotocols } from '../src/backends/link/link-codec.js';
import { LinkFrameError, parseEdgeFrame, type VerifierFrame } from '../src/backends/link/protocol.js';
import type { RunningVerifier } from '../src/verifier/main.js';
import { llamaSkipReason } from './helpers/llama-server.js';
import { startTestVerifier } from './helpers/verifier.js';

const LIMITS = { vocabSize: 512, maxTokens: 512, maxDraft: 16 };

describe('link frames are validated before anything runs', () => {
  it.each([
    ['not JSON', '{"t":', 'bad_frame'],
    ['not an object', '[1,2]', 'bad_frame'],
    ['unknown type', '{"t":"dance","s":1}', 'bad_frame'],
    ['no session id', '{"t":"close"}', 'bad_frame'],
    ['empty prompt', '{"t":"open","s":1,"p":[],"m":{"temperature":0,"topP":1,"topK":0,"minP":0}}', 'bad_frame'],
    ['id outside the vocabulary', '{"t":"score","s":1,"r":1,"n":0,"a":[512],"d":[]}', 'bad_frame'],
    ['negative id', '{"t":"score","s":1,"r":1,"n":0,"a":[-1],"d":[]}', 'bad_frame'],
    ['too many drafts', `{"t":"score","s":1,"r":1,"n":0,"a":[],"d":[${Array(17).fill(3).join(',')}]}`, 'bad_frame'],
    ['bad temperature', '{"t":"open","s":1,"p":[1],"m":{"temperature":-1,"topP":1,"topK":0,"minP":0}}', 'bad_frame'],
    ['fractional n', '{"t":"gen","s":1,"r":1,"n":0.5,"a":[],"k":4}', 'bad_frame'],
  ])('%s → %s', (_name, text, code) => {
    expect(() => parseEdgeFrame(text, LIMITS)).toThrow(LinkFrameError);
    try {
      parseEdgeFrame(text, LIMITS);
    } catch (err) {
      expect((err as LinkFrameError).code).toBe(code);
    }
  });

  it('a valid score frame parses to its fields', () => {
    expect(parseEdgeFrame('{"t":"score","s":3,"r":9,"n":5,"a":[7],"d":[8,9]}', LIMITS)).toEqual({
      t: 'score',
      s: 3,
      r: 9,
      n: 5,
      a: [7],
      d: [8, 9],
    });
  });
});

/** A raw link client that collects the verifier's frames. */
async function connect(url: string, key?: string): Promise<{ ws: WebSocket; frames: Record<string, unknown>[] }> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/link`, 'dsd-link.1', {
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
  });
  const frames: Record<string, unknown>[] = [];
  ws.on('message', (d: Buffer) => frames.push(JSON.parse(d.toString('utf8'))));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames };
}

async function until<T>(get: () => T | undefined, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const GREEDY = { temperature: 0, topP: 1, topK: 0, minP: 0 };

describe.skipIf(llamaSkipReason() !== undefined)('the link on a real verifier', () => {
  let verifier: RunningVerifier;
  beforeAll(async () => {
    verifier = await startTestVerifier('stories260K-f32.gguf', {
      keys: ['edge-key'],
      maxSessionsPerConnection: 2,
      maxFrameBytes: 4096,
      idleTimeoutMs: 300,
    });
  });
  afterAll(() => verifier?.stop());

  it('refuses an edge without the key, or with a wrong one', async () => {
    await expect(connect(verifier.url)).rejects.toThrow(/401/);
    await expect(connect(verifier.url, 'nope')).rejects.toThrow(/401/);
  });

  it('answers bad frames with coded errors and keeps serving the connection', async () => {
    const { ws, frames } = await connect(verifier.url, 'edge-key');
    ws.send('{"t":');
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    ws.send('{"t":"score","s":77,"r":1,"n":0,"a":[1],"d":[]}');
    ws.send(JSON.stringify({ t: 'open', s: 1, p: [1, 403, 407, 261, 378], m: GREEDY, n: 0 }));
    ws.send(JSON.stringify({ t: 'open', s: 1, p: [1], m: GREEDY, n: 0 }));
    ws.send(JSON.stringify({ t: 'score', s: 1, r: 1, n: 99, a: [], d: [] }));
    ws.send(JSON.stringify({ t: 'score', s: 1, r: 2, n: 5, a: [], d: [] }));
    const scored = await until(() => frames.find((f) => f.t === 'scored'));
    const codes = frames.filter((f) => f.t === 'err').map((f) => f.code);
    expect(codes).toEqual(['bad_frame', 'bad_frame', 'unknown_session', 'session_exists', 'desync']);
    expect(scored).toMatchObject({ t: 'scored', s: 1, r: 2 });
    // Greedy from BOS + "Once upon a time" goes on with ", there was a little girl named Lily."
    expect(await verifier.engine.detokenize(scored.x as number[])).toBe(',');
    ws.close();
  });

  it('speaks binary (dsd-link.3) to an edge offering it, JSON to one that does not, nothing else', async () => {
    const headers = { authorization: 'Bearer edge-key' };
    const ws = new WebSocket(`${verifier.url.replace(/^http/, 'ws')}/v1/link`, offeredSubprotocols('binary'), {
      headers,
    });
    const codec = linkCodec('binary');
    const frames: VerifierFrame[] = [];
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      const f = codec.decodeVerifier(d, isBinary);
      if (f !== undefined) frames.push(f);
    });
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    expect(ws.protocol).toBe('dsd-link.3');
    ws.send('{"t":"close","s":1}');
    ws.send(codec.encodeEdge({ t: 'open', s: 1, p: [1, 403, 407, 261, 378], m: GREEDY, n: 0 }));
    ws.send(codec.encodeEdge({ t: 'score', s: 1, r: 1, n: 5, a: [], d: [] }));
    const scored = await until(() => frames.find((f) => f.t === 'scored'));
    expect(frames[0]).toMatchObject({ t: 'err', code: 'bad_frame', msg: expect.stringMatching(/binary/) });
    expect(await verifier.engine.detokenize(scored.t === 'scored' ? scored.x : [])).toBe(',');
    // The token's bytes cross raw and come back as the JSON link's base64.
    expect(scored.t === 'scored' && scored.b?.[0]?.[1]).toBe(Buffer.from(',').toString('base64'));
    ws.close();
    const json = await connect(verifier.url, 'edge-key');
    expect(json.ws.protocol).toBe('dsd-link.1');
    json.ws.close();
    const other = new WebSocket(`${verifier.url.replace(/^http/, 'ws')}/v1/link`, 'graphql-ws', { headers });
    await expect(new Promise((resolve, reject) => other.once('open', resolve).once('error', reject))).rejects.toThrow(
      /400/,
    );
  });

  it('limits sessions per edge, closes idle sessions, and drops oversized frames', async () => {
    const { ws, frames } = await connect(verifier.url, 'edge-key');
    for (const s of [1, 2, 3]) ws.send(JSON.stringify({ t: 'open', s, p: [1, 403], m: GREEDY, n: 0 }));
    const limited = await until(() => frames.find((f) => f.t === 'err'));
    expect(limited).toMatchObject({ s: 3, code: 'session_limit' });
    const idle = await until(() => frames.find((f) => f.code === 'idle_timeout'), 3_000);
    expect(idle.code).toBe('idle_timeout');
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(JSON.stringify({ t: 'open', s: 9, p: Array(3000).fill(5), m: GREEDY, n: 0 }));
    expect(await closed).toBe(1009);
    expect(verifier.link.stats.connections).toBeGreaterThanOrEqual(0);
  });

  it('/metrics shows the link and the sequences', async () => {
    const text = await (await fetch(`${verifier.url}/metrics`)).text();
    expect(text).toMatch(/^dsd_verifier_bad_frames_total [1-9]\d*$/m);
    expect(text).toMatch(/^dsd_verifier_sequences_busy \d+$/m);
    expect(text).toMatch(/^dsd_verifier_link_received_bytes_total [1-9]\d*$/m);
  });

  it('a session cannot be reached from another connection', async () => {
    const a = await connect(verifier.url, 'edge-key');
    const b = await connect(verifier.url, 'edge-key');
    a.ws.send(JSON.stringify({ t: 'open', s: 5, p: [1, 403, 407], m: GREEDY, n: 0 }));
    b.ws.send(JSON.stringify({ t: 'score', s: 5, r: 1, n: 3, a: [], d: [] }));
    const err = await until(() => b.frames.find((f) => f.t === 'err'));
    expect(err).toMatchObject({ s: 5, code: 'unknown_session' });
    a.ws.close();
    b.ws.close();
  });
});
