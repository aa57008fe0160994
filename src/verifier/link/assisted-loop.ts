import { verifyByMatch } from '../../speculative/acceptance.js';
import type { GeneratedToken } from '../../speculative/types.js';
import type { EngineSequence, PositionSampling } from '../engine/types.js';
import { evaluationStart } from '../engine-server.js';

/** A proposal from the edge: draft tokens for the context positions from `at` on. */
export interface Proposal {
  at: number;
  d: number[];
}

/**
 * The draft tokens of a proposal still ahead of a context of `ctx.length` tokens, when the ones it
 * already passed equal what the target committed there; undefined when it is stale or refuted.
 */
export function alignedTail(p: Proposal, ctx: readonly number[]): number[] | undefined {
  const passed = ctx.length - p.at;
  if (passed < 0 || passed >= p.d.length) return undefined;
  for (let i = 0; i < passed; i++) if (p.d[i] !== ctx[p.at + i]) return undefined;
  return p.d.slice(passed);
}

/** What an evaluation costs: a fixed part and a part per token, learned as it runs. */
export class EvaluationCost {
  private single: number | undefined;
  private perToken = 0;

  observe(tokens: number, ms: number): void {
    if (tokens <= 1) this.single = this.single === undefined ? ms : 0.8 * this.single + 0.2 * ms;
    else if (this.single !== undefined)
      this.perToken = 0.8 * this.perToken + 0.2 * Math.max(0, (ms - this.single) / (tokens - 1));
  }

  /** The part of an evaluation that does not grow with its tokens: what decoding alone first wastes. */
  get fixedMs(): number {
    return this.single === undefined ? 0 : Math.max(0, this.single - this.perToken);
  }
}

/** One step of the loop: the tokens it committed and the proposal it used. */
export interface AssistedStep {
  tokens: GeneratedToken[];
  drafted: number;
  accepted: number;
}

/**
 * One step of the target that never waits: verify the proposal that lines up with the context
 * (one evaluation of its tail, the match rule of a round), or decode one token alone.
 */
export async function assistedStep(
  seq: EngineSequence,
  ctx: readonly number[],
  tail: readonly number[] | undefined,
  s: PositionSampling,
): Promise<AssistedStep> {
  const from = evaluationStart(seq, ctx);
  const tokens = ctx.slice(from);
  if (tail === undefined || tail.length === 0) {
    const [token] = await seq.evaluate(from, tokens, 1, s);
    return { tokens: token === undefined ? [] : [token], drafted: 0, accepted: 0 };
  }
  for (const id of tail) tokens.push(id);
  const scored = await seq.evaluate(from, tokens, tail.length + 1, s);
  const verdict = verifyByMatch(
    tail.map((id) => ({ id })),
    scored.map((t) => ({ sampled: t.id })),
  );
  return { tokens: scored.slice(0, verdict.accepted + 1), drafted: tail.length, accepted: verdict.accepted };
}
