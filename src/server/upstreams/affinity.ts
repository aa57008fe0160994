import { createHash } from 'node:crypto';
import type { PromptInput } from '../request-types.js';

/**
 * Conversation identity for draft and target-replica affinity, from the request itself (no tokenization needed):
 * the first two chat messages (system prompt and first turn), or the start of a text prompt, within
 * a cache scope (one tenant's conversations never share another's key).
 */
export function affinityKey(input: PromptInput, scope: string): string {
  const basis =
    input.kind === 'messages'
      ? JSON.stringify(input.messages.slice(0, 2))
      : input.kind === 'text'
        ? input.text.slice(0, 512)
        : input.ids.slice(0, 128).join(',');
  return createHash('sha256').update(`${scope}\u0000${basis}`).digest('hex').slice(0, 16);
}

/** Rendezvous (highest random weight) rank of a server for a key: stable, spreads keys evenly. */
export function rendezvousRank(key: string, url: string): number {
  return createHash('sha256').update(`${key}\u0000${url}`).digest().readUInt32BE(0);
}
