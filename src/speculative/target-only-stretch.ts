import type { DraftPort, TargetPort } from './engine-types.js';
import type { EngineFinish, GenerationState } from './generation-state.js';
import type { SpeculationPlanner, WindowDecision } from './planner.js';
import type { GeneratedToken } from './types.js';

/** What a target-only stretch needs. */
export interface StretchOptions {
  state: GenerationState;
  target: TargetPort;
  /** The draft to run in shadow, if any. */
  draft: { port: DraftPort; planner: SpeculationPlanner } | undefined;
  /** Start a shadow proposal every this many streamed tokens. */
  shadowEvery: number;
  shadowK: number;
  now: () => number;
  signal: AbortSignal;
}

/** How a stretch ended: generation finished, or speculation should resume. */
export type StretchEnd = { kind: 'finished'; finish: EngineFinish } | { kind: 'resume' };

interface Shadow {
  /** Context length when the shadow proposal was asked for. */
  at: number;
  tokens: GeneratedToken[] | undefined;
  failed: boolean;
  workMs: number;
}

/**
 * The target generates alone, in one streaming request (one round trip in all). Meanwhile the draft
 * runs in shadow on the streamed context: its proposals are compared with what the target actually
 * streams, which measures acceptance for free, and when the planner then prefers speculation the
 * stream is dropped and rounds resume.
 */
export async function* targetOnlyStretch(o: StretchOptions): AsyncGenerator<GeneratedToken[], StretchEnd> {
  const { state } = o;
  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal.reason);
  o.signal.addEventListener('abort', onAbort, { once: true });
  let shadow: Shadow | undefined;
  let last: number | undefined;
  let streamed = 0;
  try {
    for await (const token of o.target.generate(state.ctx, state.remaining, controller.signal)) {
      const t = o.now();
      if (last !== undefined) o.draft?.planner.observeTargetOnlyGap(t - last);
      last = t;
      state.stats.targetOnlyTokens += 1;
      streamed += 1;
      const { kept, finish } = state.take([token]);
      yield kept;
      if (finish) return { kind: 'finished', finish };
      if (o.draft === undefined) continue;
      if (shadow === undefined && streamed % o.shadowEvery === 0) shadow = startShadow(o, controller.signal);
      if (shadow !== undefined && settle(o, shadow)) {
        shadow = undefined;
        if (paysToResume(o.draft.planner.decide(), state.remaining)) return { kind: 'resume' };
      }
    }
    return { kind: 'finished', finish: state.remaining <= 0 ? 'length' : 'stop' };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    controller.abort();
  }
}

function startShadow(o: StretchOptions, signal: AbortSignal): Shadow {
  const shadow: Shadow = { at: o.state.ctx.length, tokens: undefined, failed: false, workMs: 0 };
  const started = o.now();
  o.draft?.port.propose(o.state.ctx.slice(), o.shadowK, signal).then(
    (tokens) => {
      shadow.tokens = tokens;
      shadow.workMs = o.now() - started;
    },
    () => {
      shadow.failed = true;
    },
  );
  return shadow;
}

/** Scores a finished shadow proposal against the streamed tokens once enough have arrived. */
function settle(o: StretchOptions, shadow: Shadow): boolean {
  if (shadow.failed) return true;
  const proposal = shadow.tokens;
  if (proposal === undefined || proposal.length === 0) return proposal !== undefined;
  const actual = o.state.ctx.slice(shadow.at);
  let accepted = 0;
  while (accepted < proposal.length && accepted < actual.length && proposal[accepted]?.id === actual[accepted])
    accepted++;
  const decided = accepted === proposal.length || accepted < actual.length;
  if (decided) o.draft?.planner.observeShadow(proposal.length, accepted, shadow.workMs);
  return decided;
}

/**
 * Dropping the stream costs a round trip: resume rounds only when the rest of the generation repays
 * it. A probe never does (it only measures; the next request's start is a free moment for it).
 */
export function paysToResume(d: WindowDecision, remainingTokens: number): boolean {
  if (d.kind !== 'speculate' || d.probe === true) return false;
  if (d.switchEconomics === undefined) return true;
  return d.switchEconomics.savedMsPerToken * remainingTokens > d.switchEconomics.switchMs;
}
