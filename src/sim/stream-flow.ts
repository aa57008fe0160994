import { GenerationAcceptance } from '../speculative/generation-acceptance.js';
import { DEFAULT_WINDOW_MAX, type ProposalUse, SharedTargetWindow } from '../speculative/shared-window.js';
import { recordRound } from '../speculative/stats.js';
import { GreedyDraftSequence } from './acceptance-model.js';
import { transmit } from './devices.js';
import { deliver, type FlowContext, LINK_FRAME } from './flow-common.js';
import { linearStepCost } from './profiles.js';
import { type StrategySpec, targetStepCost } from './scenario.js';

/** The stream strategy's settings. */
export type StreamSpec = Extract<StrategySpec, { kind: 'dsd-stream' }>;

/** A proposal the edge drafted: from `at` committed tokens, `length` drafts, the first `matched` right. */
interface Proposal {
  at: number;
  length: number;
  /** The most of its drafts one step verifies (the edge's window when it was drafted). */
  window: number;
  matched: number;
  /** When it is due at the verifier (sent + one way), as the verifier's timing estimates it. */
  dueMs: number;
  arrived: boolean;
}

/**
 * The stream through a `dsd verifier` across the link, as `src/verifier/link` runs it: the target
 * never waits for a verdict. Each step takes the newest proposal that lines up with what it has
 * committed and verifies up to k of its drafts in one evaluation (j+1 positions), else decodes one
 * token alone; with none in hand it waits only for a proposal due within its aligned share of a
 * step's fixed cost (ProposalTiming's rule). Committed tokens stream down to the edge, which drafts
 * the next proposal from the newest context it has heard of (one draft at a time, k + lead tokens,
 * the lead what the target made while earlier proposals were drafted and on their way;
 * a tree's branches, each the draft's runner-up at a miss, cost `branchCost` of a chain each; a
 * chain's drafts that repeat the chain before it do not cross again, as on link version 3).
 * A target shared between generations verifies only the drafts worth its batch's time and says
 * how many it declined; the edge's window follows (SharedTargetWindow, the edge's own rule).
 */
export function dsdStream(c: FlowContext, s: StreamSpec): void {
  // The lead: tokens the target makes while a proposal is drafted and on its way, which the edge
  // measures (as stream-drafter.ts does) and drafts beyond k; `leadTokens` fixes it.
  let leadTokens = s.leadTokens ?? 0;
  const branches = s.branches ?? 0;
  const fixedMs = linearStepCost(targetStepCost(c.scenario.targets)).fixedMs;
  const proposals: Proposal[] = [];
  let last: Proposal | undefined;
  const sequence = new GreedyDraftSequence(c.acceptance, c.rng, s.runnerUpCoverage ?? 0);
  let committed = 0;
  let heard = 0;
  let draftedFrom = -1;
  let drafting = false;
  let waiting = false;
  let finished = false;
  let arrivals = 0;
  let alignedArrivals = 0;
  const window = new SharedTargetWindow(s.k, { follow: s.follow === true, max: DEFAULT_WINDOW_MAX });
  const verified = new GenerationAcceptance(c.target.verified);
  let windowK = window.next();
  const lines = (p: Proposal, n: number) => p.at <= n && n < p.at + p.length && p.at + p.matched >= n;

  const draft = () => {
    if (drafting || finished || heard <= draftedFrom || windowK === 0) return;
    drafting = true;
    const at = heard;
    const k = windowK;
    const length = k + Math.ceil(leadTokens);
    const prefillMs = draftedFrom < 0 ? c.promptTokens * (c.edge.spec.draftPrefillMsPerToken ?? 0) : 0;
    draftedFrom = at;
    const ms = c.edge.draftMs(length, c.promptTokens + at) * (1 + (s.branchCost ?? 1) * branches) + prefillMs;
    c.edge.run(ms, () => {
      drafting = false;
      const matched = sequence.matched(at, length, branches);
      const p: Proposal = { at, length, window: k, matched, dueMs: c.sim.now + c.edge.link.oneWayMs, arrived: false };
      // Drafted from a context that followed the last chain, a greedy chain repeats that chain's
      // drafts still ahead; the link sends those again only before version 3 (continued chains).
      const repeated = last !== undefined && at <= last.at + last.matched ? last.at + last.length - at : 0;
      const fresh = length - Math.max(0, Math.min(length - 1, repeated));
      last = p;
      proposals.push(p);
      const bytes = LINK_FRAME.bytesPerFrame + (fresh + length * branches) * LINK_FRAME.bytesPerToken;
      transmit(c.sim, c.edge.link, bytes, c.bytes, 'up', c.rng, () => {
        p.arrived = true;
        arrivals += 1;
        if (s.leadTokens === undefined) leadTokens = 0.7 * leadTokens + 0.3 * (committed - at);
        if (lines(p, committed)) alignedArrivals += 1;
        if (waiting) {
          waiting = false;
          step();
        }
      });
      draft();
    });
  };

  const step = () => {
    if (finished) return;
    // Committed only grows: a proposal that no longer lines up never will again.
    for (let i = proposals.length - 1; i >= 0; i--) {
      const p = proposals[i] as Proposal;
      if (p.arrived && !lines(p, committed)) proposals.splice(i, 1);
    }
    let use: Proposal | undefined;
    for (const p of proposals) if (p.arrived && (use === undefined || p.at > use.at)) use = p;
    if (use === undefined) {
      const share = (alignedArrivals + 1) / (arrivals + 1);
      const due = Math.min(...proposals.filter((p) => !p.arrived).map((p) => p.dueMs));
      // Shared, the step's fixed part is split among its generations (the verifier's rule).
      if (due - c.sim.now < (share * fixedMs) / (1 + c.target.meanPeers)) {
        waiting = true;
        return;
      }
    }
    const aligned = use === undefined ? 0 : Math.min(use.window, use.at + use.length - committed);
    const j = aligned > 0 ? c.target.worthVerifying(aligned, verified) : 0;
    const declined = aligned - j;
    const accepted = use === undefined ? 0 : Math.max(0, Math.min(j, use.at + use.matched - committed));
    const started = c.sim.now;
    c.target.submit(j + 1, () => {
      if (use === undefined) c.record.stats.targetOnlyTokens += 1;
      else
        recordRound(c.record.stats, {
          drafted: j,
          accepted,
          committed: accepted + 1,
          draftMs: 0,
          verifyMs: c.sim.now - started,
        });
      verified.observe(j, accepted);
      const told = s.follow === true ? c.target.streamWindow(DEFAULT_WINDOW_MAX, verified) : undefined;
      commit(accepted + 1, { drafted: j, declined, ...(told === undefined ? {} : { window: told }) });
    });
  };

  // Committed tokens stream down: the client has them, and the edge drafts from them.
  const commit = (tokens: number, use: ProposalUse) => {
    committed += tokens;
    const at = committed;
    const bytes = LINK_FRAME.bytesPerFrame + tokens * LINK_FRAME.bytesPerToken;
    transmit(c.sim, c.edge.link, bytes, c.bytes, 'down', c.rng, () => {
      if (finished) return;
      heard = Math.max(heard, at);
      if (deliver(c, tokens)) {
        finished = true;
        return;
      }
      window.observe(use);
      windowK = window.next();
      draft();
    });
    if (committed < c.outputTokens) step();
  };

  // The prompt crosses once; the edge drafts from it while the verifier prefills.
  const upBytes = LINK_FRAME.bytesPerFrame + c.promptTokens * LINK_FRAME.bytesPerToken;
  draft();
  transmit(c.sim, c.edge.link, upBytes, c.bytes, 'up', c.rng, () =>
    c.target.submit(c.promptTokens + 1, () => commit(1, { drafted: 0, declined: 0 })),
  );
}
