import { describe, expect, it } from 'vitest';
import { parseEdgeFrame } from '../src/backends/link/protocol.js';
import { repeatedTokens } from '../src/backends/verifier/link-session.js';
import type { EngineSequence } from '../src/engine/types.js';
import type { GeneratedToken } from '../src/speculative/types.js';
import {
  type AssistedStep,
  deliver,
  PROPOSALS_KEPT,
  type ProposalInbox,
  serveAssisted,
} from '../src/verifier/link/assisted-loop.js';
import { ProposalTiming } from '../src/verifier/link/proposal-timing.js';

/** A target whose next token is the last one plus 1 (mod 50), counting what each evaluation scored. */
function countingSequence(): EngineSequence & { scored: number[] } {
  const seq = {
    held: [] as number[],
    scored: [] as number[],
    async evaluate(from: number, tokens: readonly number[], positions: number): Promise<GeneratedToken[]> {
      seq.held = [...seq.held.slice(0, from), ...tokens];
      seq.scored.push(positions - 1);
      return seq.held.slice(-positions).map((t) => ({ id: (t + 1) % 50 }));
    },
    release() {},
  };
  return seq;
}

const GREEDY = { sampling: { temperature: 0, topP: 1, topK: 0, minP: 0 }, topN: 0 };

describe('the assisted loop', () => {
  it('verifies at most the window a proposal names per step, and goes on along it in the next', async () => {
    const seq = countingSequence();
    const inbox: ProposalInbox = { proposals: [] };
    // The target's own continuation of [1, 2]: 3, 4, 5, … — a proposal of 9 right drafts, window 3.
    deliver(inbox, { at: 2, d: [3, 4, 5, 6, 7, 8, 9, 10, 11], w: 3 });
    const steps: AssistedStep[] = [];
    await serveAssisted({
      seq,
      ctx: [1, 2],
      sampling: GREEDY,
      maxTokens: 8,
      inbox,
      signal: new AbortController().signal,
      fixedMs: () => 0,
      emit: (_t, step) => steps.push(step),
    });
    expect(steps.map((s) => [s.drafted, s.accepted])).toEqual([
      [3, 3],
      [3, 3],
    ]);
    expect(seq.scored).toEqual([3, 3]);
  });

  it('branches that follow their chain join it; ones past its end, or with no chain kept, are dropped', () => {
    const inbox: ProposalInbox = { proposals: [] };
    deliver(inbox, { at: 4, d: [1, 2, 3] });
    deliver(inbox, {
      at: 4,
      d: [],
      b: [
        [1, [7, 8]],
        [3, [9]],
      ],
    });
    deliver(inbox, { at: 9, d: [], b: [[0, [7]]] });
    expect(inbox.proposals).toEqual([{ at: 4, d: [1, 2, 3], b: [[1, [7, 8]]] }]);
    for (let at = 5; at < 5 + PROPOSALS_KEPT; at++) deliver(inbox, { at, d: [1] });
    expect(inbox.proposals.map((p) => p.at)).toEqual([5, 6, 7, 8]);
  });

  it('a chain that continues the newest one is joined to the tokens it repeats (alone where it cannot be)', () => {
    const inbox: ProposalInbox = { proposals: [] };
    deliver(inbox, { at: 10, d: [1, 2, 3, 4, 5] });
    // Drafted from position 12 (the target took 1, 2): 3, 4, 5 again, then 6, 7: only 6, 7 cross.
    deliver(inbox, { at: 15, d: [6, 7], e: 3, w: 4 }, 16);
    expect(inbox.proposals[1]).toEqual({ at: 12, d: [3, 4, 5, 6, 7], w: 4 });
    // Its branches, sent after it from where it starts, join it as they join any chain.
    deliver(inbox, { at: 12, d: [], b: [[1, [9, 9]]] });
    expect(inbox.proposals[1]?.b).toEqual([[1, [9, 9]]]);
    // At most maxDraft long; a continuation of positions the newest chain does not hold stays its own.
    deliver(inbox, { at: 17, d: [8, 9, 10], e: 5 }, 6);
    expect(inbox.proposals[2]).toEqual({ at: 12, d: [3, 4, 5, 6, 7, 8] });
    deliver(inbox, { at: 30, d: [11], e: 2 }, 16);
    expect(inbox.proposals[3]).toEqual({ at: 30, d: [11] });
  });

  it('the edge sends again only what the chain before it does not hold at the same positions', () => {
    const sent = { at: 10, d: [1, 2, 3, 4, 5] };
    expect(repeatedTokens(sent, 12, [3, 4, 5, 6, 7])).toBe(3);
    expect(repeatedTokens(sent, 12, [3, 9, 5, 6])).toBe(1);
    expect(repeatedTokens(sent, 12, [3, 4])).toBe(1); // never all: a prop with no tokens is a tree's branches
    expect(repeatedTokens(sent, 9, [0, 1, 2])).toBe(0);
    expect(repeatedTokens(sent, 16, [6])).toBe(0);
  });

  it('the window travels in the prop frame and is bounded like the drafts', () => {
    const limits = { vocabSize: 100, maxTokens: 100, maxDraft: 16 };
    expect(parseEdgeFrame('{"t":"prop","s":1,"r":2,"at":3,"d":[4,5],"w":2}', limits)).toEqual({
      t: 'prop',
      s: 1,
      r: 2,
      at: 3,
      d: [4, 5],
      w: 2,
    });
    expect(() => parseEdgeFrame('{"t":"prop","s":1,"r":2,"at":3,"d":[4],"w":17}', limits)).toThrow(/w/);
    expect(() => parseEdgeFrame('{"t":"prop","s":1,"r":2,"at":3,"d":[4],"w":0}', limits)).toThrow(/w/);
    // Branches alone (their chain went first): indices are checked against the chain on arrival.
    expect(parseEdgeFrame('{"t":"prop","s":1,"r":2,"at":3,"d":[],"b":[[5,[6]]]}', limits)).toMatchObject({
      d: [],
      b: [[5, [6]]],
    });
  });
});

describe('ProposalTiming', () => {
  it('learns the turnaround from the context each proposal was drafted from, not the newest', () => {
    const t = new ProposalTiming();
    t.sent(10, 0);
    t.sent(13, 8);
    t.sent(14, 16);
    expect(t.dueMs(14, 16)).toBeUndefined(); // nothing arrived yet: nothing to learn from
    t.arrived(10, 30, true); // drafted from length 10, sent at 0: a 30 ms turnaround
    // The next is the one drafted from length 13 (sent at 8): due at 38.
    expect(t.dueMs(14, 31)).toBeCloseTo(7);
    // Past it, the one from length 14 (sent at 16): due at 46.
    expect(t.dueMs(14, 40)).toBeCloseTo(6);
    expect(t.dueMs(14, 47)).toBeUndefined();
  });

  it('forgets send times more than 64 tokens back, however many tokens each step added', () => {
    const t = new ProposalTiming();
    for (let length = 10; length <= 200; length += 5) t.sent(length, length);
    t.arrived(10, 300, true); // too old to time: its send time is forgotten
    expect(t.dueMs(200, 300)).toBeUndefined();
    t.arrived(150, 300, true); // sent at 150: a 150 ms turnaround
    expect(t.dueMs(200, 300)).toBeCloseTo(5); // the one from length 155, sent at 155
  });

  it('the share that lined up is a decaying mean of arrivals', () => {
    const t = new ProposalTiming();
    expect(t.alignedShare()).toBe(0.5);
    for (let i = 0; i < 40; i++) t.arrived(i, i, false);
    expect(t.alignedShare()).toBeLessThan(0.01);
    t.arrived(41, 41, true);
    expect(t.alignedShare()).toBeCloseTo(0.2, 2);
  });
});
