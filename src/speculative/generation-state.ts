import type { SpeculationStats } from './stats.js';
import type { GeneratedToken } from './types.js';

/** Why generation ended: an end token, or the token/context limit. */
export type EngineFinish = 'stop' | 'length';

/** The growing context of one generation and its limits. */
export class GenerationState {
  readonly ctx: number[];
  produced = 0;

  constructor(
    prompt: readonly number[],
    private readonly limits: { maxTokens: number; contextTokens: number; isEnd: (t: GeneratedToken) => boolean },
    readonly stats: SpeculationStats,
  ) {
    this.ctx = [...prompt];
  }

  /** Tokens still allowed. */
  get remaining(): number {
    return Math.min(this.limits.maxTokens - this.produced, this.limits.contextTokens - this.ctx.length);
  }

  /** Commits tokens up to an end token or the limit; the finish reason when one was hit. */
  take(tokens: readonly GeneratedToken[]): { kept: GeneratedToken[]; finish?: EngineFinish } {
    const kept: GeneratedToken[] = [];
    for (const t of tokens) {
      kept.push(t);
      this.ctx.push(t.id);
      this.produced += 1;
      if (this.limits.isEnd(t)) return { kept, finish: 'stop' };
      if (this.remaining <= 0) return { kept, finish: 'length' };
    }
    return { kept };
  }
}

/** The committed token: the target's view of the id where it has one, bytes from whoever knows them. */
export function committedToken(
  id: number,
  targetTok: GeneratedToken | undefined,
  draftTok: GeneratedToken | undefined,
): GeneratedToken {
  const base: GeneratedToken = targetTok?.id === id ? { ...targetTok } : { id };
  const bytes =
    base.bytes ?? (draftTok?.id === id ? draftTok.bytes : undefined) ?? targetTok?.top?.find((t) => t.id === id)?.bytes;
  if (bytes !== undefined) base.bytes = bytes;
  if (targetTok?.id !== id) delete base.endOfGeneration;
  return base;
}
