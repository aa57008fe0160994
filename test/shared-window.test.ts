import { describe, expect, it } from 'vitest';
import { SharedTargetWindow } from '../src/speculative/shared-window.js';

describe('SharedTargetWindow', () => {
  it('proposes the planner k while the target verifies everything', () => {
    const w = new SharedTargetWindow(4);
    for (let i = 0; i < 5; i++) {
      expect(w.next()).toBe(4);
      w.observe({ drafted: 4, declined: 0 });
    }
  });

  it('follows the window the target says it would verify at, up to the edge’s max, unless k was fixed', () => {
    const w = new SharedTargetWindow(4, { follow: true, max: 10 });
    w.observe({ drafted: 4, declined: 0, window: 9 });
    expect(w.next()).toBe(9);
    w.observe({ drafted: 9, declined: 0, window: 14 });
    expect(w.next()).toBe(10);
    w.observe({ drafted: 2, declined: 3, window: 2 });
    expect(w.next()).toBe(2);
    const fixed = new SharedTargetWindow(4, { follow: false, max: 10 });
    fixed.observe({ drafted: 4, declined: 0, window: 9 });
    expect(fixed.next()).toBe(4);
  });

  it('shrinks to what a shared target verified and grows back one a step', () => {
    const w = new SharedTargetWindow(4);
    w.observe({ drafted: 1, declined: 3 });
    expect(w.next()).toBe(1);
    w.observe({ drafted: 1, declined: 0 });
    expect(w.next()).toBe(2);
    // A step that ended early at a rejection (fewer verified, none declined) does not grow it.
    w.observe({ drafted: 1, declined: 0 });
    expect(w.next()).toBe(2);
    w.observe({ drafted: 2, declined: 0 });
    w.observe({ drafted: 3, declined: 0 });
    w.observe({ drafted: 4, declined: 0 });
    expect(w.next()).toBe(4);
  });

  it('backs off exponentially, one draft a probe, when whole proposals are declined', () => {
    const w = new SharedTargetWindow(4);
    const drafting = () => {
      const pattern: number[] = [];
      for (let i = 0; i < 8; i++) pattern.push(w.next());
      return pattern;
    };
    w.observe({ drafted: 0, declined: 4 });
    expect(drafting().slice(0, 2)).toEqual([0, 1]);
    w.observe({ drafted: 0, declined: 1 });
    expect(drafting().slice(0, 3)).toEqual([0, 0, 1]);
    w.observe({ drafted: 0, declined: 1 });
    expect(drafting().slice(0, 5)).toEqual([0, 0, 0, 0, 1]);
    // Used again: no more skipping, and the window grows from there.
    w.observe({ drafted: 1, declined: 0 });
    expect(w.next()).toBe(2);
  });
});
