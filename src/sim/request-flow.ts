import { GenerationAcceptance } from '../speculative/generation-acceptance.js';
import { adaptivePlanner, fixedPlanner, PROBE_EVERY_TOKENS, type SpeculationPlanner } from '../speculative/planner.js';
import { recordRound } from '../speculative/stats.js';
import { paysToResume } from '../speculative/target-only-stretch.js';
import { roundWindow } from '../speculative/window.js';
import { transmit } from './devices.js';
import { dsdWithEarlyVerification } from './early-verification-flow.js';
import { deliver, type FlowContext, LINK_FRAME, verifyTokens, WIRE } from './flow-common.js';
import { dsdStream } from './stream-flow.js';

export type { FlowContext, RequestRecord } from './flow-common.js';

/** Runs one request with its strategy. */
export function startRequest(c: FlowContext): void {
  switch (c.strategy.kind) {
    case 'target-only':
      return targetOnly(c, true);
    case 'single-node':
      return singleNode(c, c.strategy.k, c.strategy.draftMsPerToken);
    case 'dsd-fixed':
      return dsdFlow(c, fixedPlanner(c.strategy.k, c.estimates), c.strategy);
    case 'dsd-stream':
      return dsdStream(c, c.strategy);
    case 'dsd-adaptive': {
      const w = c.scenario.window ?? { min: 1, max: 16 };
      const s = c.strategy;
      return dsdFlow(
        c,
        adaptivePlanner(c.estimates, {
          ...w,
          initialK: 4,
          margin: 0.05,
          explore: 0.1,
          draftAhead: s.draftAhead ?? false,
          aheadDepth: s.draftAhead ? (s.aheadDepth ?? 0) : 0,
          rng: c.rng,
          probeEveryTokens: PROBE_EVERY_TOKENS,
        }),
        s,
      );
    }
  }
}

/** Early verification has its own flow; plain DSD (with or without draft-only ahead) the simpler one. */
function dsdFlow(
  c: FlowContext,
  planner: SpeculationPlanner,
  s: { draftAhead?: boolean; aheadDepth?: number; verifier?: boolean },
): void {
  const depth = s.draftAhead ? (s.aheadDepth ?? 0) : 0;
  if (depth > 0)
    return dsdWithEarlyVerification(c, planner, depth, (withPrompt, resume) =>
      targetOnly(c, withPrompt, planner, resume),
    );
  dsd(c, planner, s.draftAhead ?? false, s.verifier ?? false);
}

/** The target generates the rest alone and streams it: one request, one step per token. */
function targetOnly(c: FlowContext, withPrompt: boolean, planner?: SpeculationPlanner, resume?: () => void): void {
  const wire = c.scenario.wire ?? WIRE;
  const context = c.promptTokens + c.record.tokens;
  let last: number | undefined;
  let sinceShadow = 0;
  let stop = false;
  // Tokens generated so far (they reach the client one link delay later).
  let produced = c.record.tokens;
  transmit(c.sim, c.edge.link, wire.bytesPerRequest + context * wire.bytesPerPromptToken, c.bytes, 'up', c.rng, () => {
    let first = withPrompt;
    const step = () => {
      if (stop || produced >= c.outputTokens) return;
      produced += 1;
      c.target.submit(first ? c.promptTokens + 1 : 1, () => {
        first = false;
        transmit(c.sim, c.edge.link, wire.bytesPerPosition, c.bytes, 'down', c.rng, () => {
          if (stop) return;
          if (last !== undefined) planner?.observeTargetOnlyGap(c.sim.now - last);
          last = c.sim.now;
          c.record.stats.targetOnlyTokens += 1;
          if (deliver(c, 1)) {
            stop = true;
            return;
          }
          if (planner !== undefined && ++sinceShadow >= 8) {
            sinceShadow = 0;
            shadow(c, planner, () => {
              // The proxy's rule: a probe, or a resume the rest of the generation would not repay,
              // never drops the running stream (each drop costs a round trip).
              if (!stop && paysToResume(planner.decide(), c.outputTokens - c.record.tokens)) {
                stop = true;
                resume?.();
              }
            });
          }
        });
        step();
      });
    };
    step();
  });
}

/** A shadow proposal on the edge, scored against what the target streams (acceptance for free). */
function shadow(c: FlowContext, planner: SpeculationPlanner, then: () => void): void {
  const k = 4;
  const ms = c.edge.draftMs(k, c.promptTokens + c.record.tokens);
  c.edge.run(ms, (elapsedMs) => {
    planner.observeShadow(k, c.acceptance.round(k).accepted, elapsedMs);
    then();
  });
}

/** Single-node speculative decoding: draft and target on the target's device, no network per round. */
function singleNode(c: FlowContext, k: number, draftMsPerToken: number): void {
  const wire = c.scenario.wire ?? WIRE;
  let committed = 0;
  transmit(
    c.sim,
    c.edge.link,
    wire.bytesPerRequest + c.promptTokens * wire.bytesPerPromptToken,
    c.bytes,
    'up',
    c.rng,
    () => {
      c.target.submit(c.promptTokens, () => {
        const round = () => {
          const kk = roundWindow(k, c.outputTokens - committed, Infinity);
          c.target.draft(kk, draftMsPerToken, () => {
            c.target.submit(verifyTokens(c, kk), () => {
              const v = c.acceptance.round(kk);
              committed += v.tokens.length;
              recordRound(c.record.stats, {
                drafted: kk,
                accepted: v.accepted,
                committed: v.tokens.length,
                draftMs: kk * draftMsPerToken,
                verifyMs: 0,
              });
              transmit(c.sim, c.edge.link, wire.bytesPerPosition * v.tokens.length, c.bytes, 'down', c.rng, () =>
                deliver(c, v.tokens.length),
              );
              if (committed < c.outputTokens) round();
            });
          });
        };
        round();
      });
    },
  );
}

/** A draft-ahead proposal running on the edge; `workMs` is its request time once finished. */
interface Ahead {
  workMs: number | undefined;
  onFinish?: () => void;
}

/** Distributed speculative decoding: draft at the edge, verification across the link. */
function dsd(c: FlowContext, planner: SpeculationPlanner, draftAhead: boolean, verifier: boolean): void {
  const wire = c.scenario.wire ?? WIRE;
  let prefilled = false;
  let sentTokens = 0;
  // Through a verifier a round is k+1 tokens of one sequence, and its frames carry only what is
  // new (the tokens committed since the last round, the drafts); the prompt crosses once.
  const upBytes = (k: number, context: number) => {
    if (!verifier) return wire.bytesPerRequest + (k + 1) * (context + k / 2) * wire.bytesPerPromptToken;
    const fresh = context - sentTokens;
    sentTokens = context;
    return LINK_FRAME.bytesPerFrame + (fresh + k) * LINK_FRAME.bytesPerToken;
  };
  const downBytes = (k: number) =>
    verifier
      ? LINK_FRAME.bytesPerFrame + (k + 1) * LINK_FRAME.bytesPerToken
      : wire.bytesPerRequest + (k + 1) * wire.bytesPerPosition;
  const scored = (k: number) => (verifier ? k + 1 : verifyTokens(c, k));
  const verified = new GenerationAcceptance(c.target.verified);
  const round = (ready: Ahead | undefined) => {
    const decision = planner.decide();
    if (decision.kind === 'target-only') {
      // The target-only request carries the prompt if no round has; the target's prefix cache
      // then holds it for the rounds that follow.
      const withPrompt = !prefilled;
      prefilled = true;
      return targetOnly(c, withPrompt, planner, () => round(undefined));
    }
    const k = roundWindow(decision.k, c.outputTokens - c.record.tokens, Infinity);
    const context = c.promptTokens + c.record.tokens;
    const draftWork =
      c.edge.draftMs(k, context) + (prefilled ? 0 : c.promptTokens * (c.edge.spec.draftPrefillMsPerToken ?? 0));
    const draftStart = c.sim.now;
    const verify = (draftWorkMs: number) => {
      const draftMs = c.sim.now - draftStart;
      const sent = c.sim.now;
      // While the target verifies, the edge drafts on from "everything accepted".
      let ahead: Ahead | undefined;
      if (draftAhead && k > 0) {
        const a: Ahead = { workMs: undefined };
        c.edge.run(c.edge.draftMs(k + 1, context + k), (elapsedMs) => {
          a.workMs = elapsedMs;
          a.onFinish?.();
        });
        ahead = a;
      }
      transmit(c.sim, c.edge.link, upBytes(k, context), c.bytes, 'up', c.rng, () => {
        // A verifier sharing its target between generations verifies only the drafts worth its time.
        const j = verifier ? c.target.worthVerifying(k, verified) : k;
        c.target.submit(scored(j) + (prefilled ? 0 : c.promptTokens), () => {
          prefilled = true;
          transmit(c.sim, c.edge.link, downBytes(j), c.bytes, 'down', c.rng, () => {
            const v = c.acceptance.round(j);
            if (verifier) verified.observe(j, v.accepted);
            const verifyMs = c.sim.now - sent;
            recordRound(c.record.stats, {
              drafted: j,
              accepted: v.accepted,
              committed: v.tokens.length,
              draftMs,
              verifyMs,
            });
            planner.observeRound({ drafted: j, accepted: v.accepted, draftMs, draftWorkMs, verifyMs });
            const hit = ahead !== undefined && v.accepted === k && c.acceptance.bonusGuessRight(k);
            if (ahead !== undefined) {
              if (hit) c.record.stats.draftAheadHits += 1;
              else c.record.stats.draftAheadMisses += 1;
            }
            if (deliver(c, v.tokens.length)) return;
            round(hit ? ahead : undefined);
          });
        });
      });
    };
    if (ready === undefined) c.edge.run(draftWork, verify);
    else if (ready.workMs !== undefined) verify(ready.workMs);
    else ready.onFinish = () => verify(ready.workMs ?? 0);
  };
  round(undefined);
}
