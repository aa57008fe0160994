import { Gauge, type Registry } from 'prom-client';
import type { TargetEngine } from '../engine/types.js';
import type { LinkStats } from './link/types.js';

/**
 * The verifier's own figures on the same /metrics as its OpenAI API: link traffic and rounds,
 * sequences in use, and prompt tokens its KV saved. Read at scrape time, nothing on the hot path.
 */
export function registerVerifierMetrics(
  registry: Registry,
  engine: TargetEngine,
  link: () => LinkStats | undefined,
): void {
  const fromLink = (name: string, help: string, read: (s: LinkStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const s = link();
        if (s !== undefined) this.set(read(s));
      },
    });
  fromLink('dsd_verifier_link_connections', 'Edge connections on the link', (s) => s.connections);
  fromLink('dsd_verifier_link_sessions', 'Generations open on the link', (s) => s.sessions);
  fromLink('dsd_verifier_rounds_total', 'Rounds evaluated (proposals verified)', (s) => s.rounds);
  fromLink(
    'dsd_verifier_stale_rounds_total',
    'Early rounds refuted by the last verdict, not evaluated',
    (s) => s.staleRounds,
  );
  fromLink('dsd_verifier_draft_tokens_total', 'Draft tokens verified', (s) => s.draftTokens);
  fromLink(
    'dsd_verifier_unverified_draft_tokens_total',
    'Draft tokens not verified because generations shared the target (they cost its time more than they saved)',
    (s) => s.unverifiedDraftTokens,
  );
  fromLink(
    'dsd_verifier_tree_branch_steps_total',
    'Stream steps that verified a proposal tree branch (the target correction, continued): no round trip lost',
    (s) => s.branchSteps,
  );
  fromLink(
    'dsd_verifier_continued_draft_tokens_total',
    'Draft tokens edges did not send again: a chain continued the one before it, which held them',
    (s) => s.continuedDrafts,
  );
  fromLink('dsd_verifier_bad_frames_total', 'Link frames answered with an error', (s) => s.badFrames);
  fromLink('dsd_verifier_link_received_bytes_total', 'Link payload bytes from edges', (s) => s.bytesIn);
  fromLink('dsd_verifier_link_sent_bytes_total', 'Link payload bytes to edges', (s) => s.bytesOut);
  const load = (name: string, help: string, read: (l: ReturnType<TargetEngine['load']>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(engine.load()));
      },
    });
  const i = engine.info;
  new Gauge({
    name: 'dsd_verifier_engine_info',
    help: 'The target engine: what drives it, its backend and devices (always 1)',
    labelNames: ['engine', 'backend', 'build', 'device'],
    registers: [registry],
  }).set({ engine: i.engine, backend: i.backend, build: i.build, device: i.device }, 1);
  load('dsd_verifier_sequences_busy', 'Sequences in use by a generation', (l) => l.busy);
  load('dsd_verifier_sequences_waiting', 'Generations waiting for a sequence', (l) => l.waiting);
  load(
    'dsd_verifier_reused_prefix_tokens_total',
    'Prompt tokens found in a sequence KV (multi-turn reuse)',
    (l) => l.reusedPrefixTokens,
  );
  load('dsd_verifier_evaluations_total', 'Target evaluations (engine calls)', (l) => l.evaluations);
  load(
    'dsd_verifier_evaluated_steps_total',
    'Generation steps the evaluations served (over evaluations: the mean batch occupancy)',
    (l) => l.evaluatedSteps,
  );
}
