import type { AssistedTarget, CommittedTokens, DraftSlot, EngineOptions, EngineResult } from './engine-types.js';

export type { AssistedChunk, AssistedStream, AssistedTarget } from './engine-types.js';

import { GenerationState } from './generation-state.js';
import { SharedTargetWindow, type StreamWindowOptions } from './shared-window.js';
import { recordRound } from './stats.js';
import { createStreamDrafter } from './stream-drafter.js';

/**
 * Generation with a target that never waits for the network: it streams its own tokens, and the
 * edge drafts from the newest context it has seen and sends each proposal tagged with its
 * position. The target verifies a proposal where it lines up with what it committed meanwhile
 * (draft tokens it already passed must equal its own), in one batched step, with the same match
 * rule as a round; otherwise it decodes alone. So the stream is never slower than the target
 * alone, and each proposal that lines up commits several tokens in one step.
 */
export async function* runAssisted(
  o: EngineOptions,
  draft: DraftSlot,
  target: AssistedTarget,
  window: { k: number } & StreamWindowOptions,
): AsyncGenerator<CommittedTokens, EngineResult> {
  const state = new GenerationState(
    o.prompt,
    { maxTokens: o.maxTokens, contextTokens: o.contextTokens, isEnd: o.isEnd },
    o.stats,
  );
  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal.reason);
  o.signal.addEventListener('abort', onAbort, { once: true });
  const stream = target.assist(state.ctx, state.remaining, controller.signal);
  const { draftFrom } = createStreamDrafter({ o, draft, stream, state, signal: controller.signal });
  const shared = new SharedTargetWindow(window.k, window);
  try {
    draftFrom(shared.next());
    for await (const chunk of stream.chunks) {
      shared.observe({
        drafted: chunk.drafted,
        declined: chunk.declined ?? 0,
        ...(chunk.window === undefined ? {} : { window: chunk.window }),
      });
      if (chunk.branch === true) o.stats.treeBranchSteps += 1;
      if (chunk.drafted > 0) {
        const committed = Math.min(chunk.tokens.length, chunk.accepted + 1);
        recordRound(o.stats, { drafted: chunk.drafted, accepted: chunk.accepted, committed, draftMs: 0, verifyMs: 0 });
      } else o.stats.targetOnlyTokens += chunk.tokens.length;
      const { kept, finish } = state.take(chunk.tokens);
      yield { tokens: kept, source: chunk.drafted > 0 ? 'round' : 'target-only' };
      if (finish) return { finish, stats: o.stats };
      const next = shared.next();
      if (next > 0) draftFrom(next);
    }
    return { finish: state.remaining <= 0 ? 'length' : 'stop', stats: o.stats };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    controller.abort();
  }
}
