import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../src/errors.js';
import { FailoverTarget, type ReplicaPort } from '../src/server/generation/failover-target.js';
import type { TargetPort } from '../src/speculative/engine-types.js';
import type { GeneratedToken } from '../src/speculative/types.js';

/** The target's function: the next token is the sum of the context mod 97. */
const next = (ctx: readonly number[]) => ctx.reduce((a, b) => a + b, 0) % 97;
const lost = () => new UpstreamError('upstream_unavailable', 'the verifier link closed', { role: 'target' });

/** A replica that computes `next` and dies after `lifeTokens` tokens (Infinity: never). */
function replica(url: string, lifeTokens = Infinity): ReplicaPort & { calls: number[][] } {
  let made = 0;
  const calls: number[][] = [];
  const step = (ctx: number[]): GeneratedToken => {
    if (made >= lifeTokens) throw lost();
    made += 1;
    return { id: next(ctx) };
  };
  const port: TargetPort = {
    score: async (prompts) => {
      calls.push([...(prompts[0] ?? [])]);
      return prompts.map((p) => step([...p]));
    },
    generate: async function* (ctx, maxTokens) {
      calls.push([...ctx]);
      const c = [...ctx];
      for (let i = 0; i < maxTokens; i++) {
        const t = step(c);
        c.push(t.id);
        yield t;
      }
    },
    assist: (ctx, maxTokens) => ({
      chunks: (async function* () {
        for await (const t of port.generate(ctx, maxTokens, AbortSignal.timeout(1000)))
          yield { tokens: [t], drafted: 0, accepted: 0 };
      })(),
      propose: () => {},
    }),
  };
  return { url, server: {} as ReplicaPort['server'], port, calls };
}

function alone(ctx: number[], n: number): number[] {
  const c = [...ctx];
  for (let i = 0; i < n; i++) c.push(next(c));
  return c.slice(ctx.length);
}

const signal = () => AbortSignal.timeout(5_000);

describe('FailoverTarget: a generation carried on another replica from its committed context', () => {
  it('a stream cut by a dying replica goes on from what it yielded: same tokens, none twice', async () => {
    const a = replica('a', 5);
    const b = replica('b');
    const moves: string[] = [];
    const t = new FailoverTarget({
      first: a,
      next: async () => b,
      onFailover: (from, to) => moves.push(`${from}>${to}`),
    });
    const got: number[] = [];
    for await (const tok of t.generate([1, 2, 3], 12, signal())) got.push(tok.id);
    expect(got).toEqual(alone([1, 2, 3], 12));
    expect(moves).toEqual(['a>b']);
    expect(b.calls[0]).toEqual([1, 2, 3, ...got.slice(0, 5)]);
    expect(t.url).toBe('b');
  });

  it('the assisted stream re-opens on the next replica; a verdict is asked again', async () => {
    const t = new FailoverTarget({ first: replica('a', 3), next: async () => replica('b') });
    const got: number[] = [];
    for await (const c of t.assist!([4, 5], 8, signal()).chunks) got.push(...c.tokens.map((x) => x.id));
    expect(got).toEqual(alone([4, 5], 8));
    const u = new FailoverTarget({ first: replica('a', 0), next: async () => replica('b') });
    expect((await u.score([[7], [7, 7]], signal())).map((x) => x.id)).toEqual([7, 14]);
  });

  it('asks the replica serving it whether to stream now, and says nothing for a port that cannot tell', async () => {
    const first = replica('a', 2);
    const second = replica('b');
    first.port.streamNow = () => false;
    second.port.streamNow = () => true;
    const t = new FailoverTarget({ first, next: async () => second });
    expect(t.streamNow?.()).toBe(false);
    await t.score([[1]], signal());
    await t.score([[1]], signal());
    await t.score([[1]], signal()); // the first replica dies here: the generation moves to b
    expect(t.url).toBe('b');
    expect(t.streamNow?.()).toBe(true);
    expect(new FailoverTarget({ first: replica('c'), next: async () => undefined }).streamNow).toBeUndefined();
  });

  it('replays from the context as asked, though the caller grows its own array as it commits', async () => {
    // The engine passes its live context and pushes each token it takes: a replay built from that
    // array (plus what was yielded) would send the yielded tokens twice.
    const live = [1, 2, 3];
    const b = replica('b');
    const t = new FailoverTarget({ first: replica('a', 4), next: async () => b });
    for await (const c of t.assist!(live, 10, signal()).chunks) live.push(...c.tokens.map((x) => x.id));
    expect(live.slice(3)).toEqual(alone([1, 2, 3], 10));
    expect(b.calls[0]).toEqual([1, 2, 3, ...live.slice(3, 7)]);
    const ctx = [9, 9];
    const c = replica('c');
    const u = new FailoverTarget({ first: replica('a', 2), next: async () => c });
    for await (const tok of u.generate(ctx, 6, signal())) ctx.push(tok.id);
    expect(ctx.slice(2)).toEqual(alone([9, 9], 6));
    expect(c.calls[0]).toEqual([9, 9, ...ctx.slice(2, 4)]);
  });

  it('moves once however many requests saw the replica fail; with no replica left the error stands', async () => {
    let asked = 0;
    const t = new FailoverTarget({
      first: replica('a', 0),
      next: async () => {
        asked += 1;
        return replica('b');
      },
    });
    await Promise.all([t.score([[1]], signal()), t.score([[2]], signal()), t.score([[3]], signal())]);
    expect(asked).toBe(1);
    const none = new FailoverTarget({ first: replica('a', 0), next: async () => undefined });
    await expect(none.score([[1]], signal())).rejects.toThrow('the verifier link closed');
  });

  it('a bad request or a client that left is not a failover', async () => {
    const bad = replica('a');
    bad.port.score = async () => {
      throw new UpstreamError('upstream_bad_response', 'nonsense', { role: 'target' });
    };
    let asked = 0;
    const nextReplica = async () => {
      asked += 1;
      return replica('b');
    };
    const t = new FailoverTarget({ first: bad, next: nextReplica });
    await expect(t.score([[1]], signal())).rejects.toThrow('nonsense');
    const gone = new AbortController();
    gone.abort();
    const dying = new FailoverTarget({ first: replica('a', 0), next: nextReplica });
    await expect(dying.score([[1]], gone.signal)).rejects.toThrow();
    expect(asked).toBe(0);
  });
});
