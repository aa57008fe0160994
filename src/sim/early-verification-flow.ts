import type { SpeculationPlanner } from '../speculative/planner.js';
import { recordRound } from '../speculative/stats.js';
import { roundWindow } from '../speculative/window.js';
import { transmit } from './devices.js';
import { deliver, type FlowContext, verifyTokens, WIRE } from './flow-common.js';

/** A round of the optimistic chain: drafted, and (unless draft-only) sent to the target. */
interface SimRound {
  k: number;
  draftWorkMs: number;
  draftWaitMs: number;
  /** Chain depth allowed when it was sent early; undefined for a round sent after its predecessor's verdict. */
  earlyDepth: number | undefined;
  sentAt: number | undefined;
  arrivedAt: number | undefined;
  onArrive?: () => void;
}

/**
 * DSD with draft-ahead and early verification, as the proxy's engine runs it: while round r is
 * verified the edge drafts round r+1 from "all of round r accepted" and sends it at once, up to
 * `depth` rounds ahead (depth 0: drafted ahead, sent after the verdict). A verdict that goes
 * elsewhere (a rejection, or a bonus unlike the draft's guess) drops the rest of the chain, whose
 * verifications the target still computes.
 */
export function dsdWithEarlyVerification(
  c: FlowContext,
  planner: SpeculationPlanner,
  maxDepth: number,
  goTargetOnly: (withPrompt: boolean, resume: () => void) => void,
): void {
  const wire = c.scenario.wire ?? WIRE;
  let prefilled = false;
  let epoch = 0;
  let chain: SimRound[] = [];
  let growing: number | undefined;
  let lastVerdictAt = c.sim.now;

  const send = (r: SimRound) => {
    const context = c.promptTokens + c.record.tokens;
    const withPrompt = !prefilled;
    prefilled = true;
    r.sentAt = c.sim.now;
    transmit(
      c.sim,
      c.edge.link,
      wire.bytesPerRequest + (r.k + 1) * (context + r.k / 2) * wire.bytesPerPromptToken,
      c.bytes,
      'up',
      c.rng,
      () => {
        c.target.submit(verifyTokens(c, r.k) + (withPrompt ? c.promptTokens : 0), () => {
          transmit(
            c.sim,
            c.edge.link,
            wire.bytesPerRequest + (r.k + 1) * wire.bytesPerPosition,
            c.bytes,
            'down',
            c.rng,
            () => {
              r.arrivedAt = c.sim.now;
              r.onArrive?.();
            },
          );
        });
      },
    );
  };

  const drop = () => {
    c.record.stats.draftAheadMisses += chain.length;
    c.record.stats.earlyVerificationsWasted += chain.filter((r) => r.sentAt !== undefined).length;
    chain = [];
    epoch += 1;
  };

  const grow = (k: number, depth: number) => {
    if (growing === epoch) return;
    const e = epoch;
    growing = e;
    const step = () => {
      if (
        e !== epoch ||
        chain.length >= Math.max(1, depth) ||
        (chain[chain.length - 1]?.sentAt === undefined && chain.length > 0)
      ) {
        if (growing === e) growing = undefined;
        return;
      }
      const ms = c.edge.draftMs(k + 1, c.promptTokens + c.record.tokens);
      c.edge.run(ms, (elapsedMs) => {
        if (e !== epoch) return step();
        const r: SimRound = {
          k,
          draftWorkMs: elapsedMs,
          draftWaitMs: 0,
          earlyDepth: depth > 0 ? depth : undefined,
          sentAt: undefined,
          arrivedAt: undefined,
        };
        chain.push(r);
        if (depth > 0) {
          send(r);
          c.record.stats.earlyVerifications += 1;
        }
        step();
      });
    };
    step();
  };

  const verdict = (r: SimRound, depth: number) => {
    const waitStart = c.sim.now;
    const onVerdict = () => {
      const v = c.acceptance.round(r.k);
      const hit = v.accepted === r.k && c.acceptance.bonusGuessRight(r.k);
      recordRound(c.record.stats, {
        drafted: r.k,
        accepted: v.accepted,
        committed: v.tokens.length,
        draftMs: r.draftWaitMs,
        verifyMs: c.sim.now - waitStart,
      });
      const early =
        r.earlyDepth === undefined ? {} : { early: { depth: r.earlyDepth, waitMs: c.sim.now - lastVerdictAt } };
      planner.observeRound({
        drafted: r.k,
        accepted: v.accepted,
        draftMs: r.draftWaitMs,
        draftWorkMs: r.draftWorkMs,
        verifyMs: (r.arrivedAt as number) - (r.sentAt as number),
        ...early,
      });
      lastVerdictAt = c.sim.now;
      if (!hit) drop();
      if (deliver(c, v.tokens.length)) return drop();
      next(depth);
    };
    if (r.arrivedAt !== undefined) onVerdict();
    else r.onArrive = onVerdict;
  };

  const next = (lastDepth: number) => {
    const decision = planner.decide();
    if (decision.kind === 'target-only') {
      drop();
      const withPrompt = !prefilled;
      prefilled = true;
      return goTargetOnly(withPrompt, () => next(lastDepth));
    }
    const head = chain.shift();
    if (head !== undefined) {
      c.record.stats.draftAheadHits += 1;
      if (head.sentAt === undefined) send(head);
      grow(head.k, decision.aheadDepth ?? maxDepth);
      return verdict(head, lastDepth);
    }
    const k = roundWindow(decision.k, c.outputTokens - c.record.tokens, Infinity);
    const depth = Math.min(maxDepth, decision.aheadDepth ?? maxDepth);
    const work =
      c.edge.draftMs(k, c.promptTokens + c.record.tokens) +
      (prefilled ? 0 : c.promptTokens * (c.edge.spec.draftPrefillMsPerToken ?? 0));
    const start = c.sim.now;
    c.edge.run(work, (elapsedMs) => {
      const r: SimRound = {
        k,
        draftWorkMs: elapsedMs,
        draftWaitMs: c.sim.now - start,
        earlyDepth: undefined,
        sentAt: undefined,
        arrivedAt: undefined,
      };
      send(r);
      if (k > 0) grow(k, depth);
      verdict(r, depth);
    });
  };
  next(maxDepth);
}
