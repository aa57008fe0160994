import type { ChatMessage, ModelServer } from '../../backends/types.js';
import { hashOf, type PromptCache } from '../../cache/prompt-cache.js';
import type { PromptInput } from '../request-types.js';
import type { Tokenize } from './racing-tokenizer.js';

/** Characters of the cached text re-tokenized with the new suffix to verify the split. */
const BOUNDARY_WINDOW_CHARS = 64;

/** What building a prompt needs. */
export interface PromptBuild {
  input: PromptInput;
  target: ModelServer;
  /** The model name, part of every cache key. */
  model: string;
  /** The request's cache scope (its tenant), part of every cache key. */
  scope: string;
  cache: PromptCache | undefined;
  signal: AbortSignal;
  /** Stands in for the target's /tokenize (the racing tokenizer); default: the target's. */
  tokenize?: Tokenize;
  /** When given, cache writes wait for it to resolve true: the ids came from a stand-in tokenizer
   *  and the cache keeps only what the target confirmed. */
  confirm?: () => Promise<boolean>;
}

/** Writes to the cache now, or once the ids are confirmed. */
function remember(b: PromptBuild, write: () => void): void {
  if (b.confirm === undefined) write();
  else
    b.confirm().then(
      (ok) => ok && write(),
      () => undefined,
    );
}

/** Conversations are cached per scope and model. */
function namespace(b: PromptBuild): string {
  return `${b.scope}\u0000${b.model}`;
}

function tokenizer(b: PromptBuild): Tokenize {
  return b.tokenize ?? ((text, addSpecial, signal) => b.target.tokenize(text, addSpecial, signal));
}

/**
 * The prompt as token ids, built once and sent to both servers: chat messages through the
 * target's own chat template, text tokenized by the target (with BOS, as its own endpoints do),
 * id prompts as given. With a cache: an exact input seen before costs nothing; a chat turn that
 * extends a cached conversation (llama.cpp targets template as text) tokenizes only a 64-character
 * window plus the new suffix, after checking that the split falls between tokens; otherwise the
 * whole text is tokenized.
 */
export async function buildPromptIds(b: PromptBuild): Promise<number[]> {
  const { input, cache, signal } = b;
  if (input.kind === 'ids') return input.ids;
  const key = hashOf(b.scope, b.model, input);
  const cached = cache?.getExact(key);
  if (cached !== undefined) return cached;
  let ids: number[];
  if (input.kind === 'text') ids = await tokenizer(b)(input.text, true, signal);
  else ids = await chatIds(b, input.messages);
  if (cache !== undefined) {
    cache.counters.misses += 1;
    const found = ids;
    remember(b, () => cache.setExact(key, found));
  }
  return ids;
}

async function chatIds(b: PromptBuild, messages: ChatMessage[]): Promise<number[]> {
  const { target, cache, signal } = b;
  const tokenize = tokenizer(b);
  if (target.chatTemplate === undefined || cache === undefined) return target.chatPromptIds(messages, signal);
  const { text, addSpecial } = await target.chatTemplate(messages, signal);
  const earlier = cache.longestConversation(namespace(b), messages);
  let ids: number[] | undefined;
  if (earlier !== undefined && text.startsWith(earlier.text) && text.length > earlier.text.length) {
    const suffix = text.slice(earlier.text.length);
    const window = earlier.text.slice(-BOUNDARY_WINDOW_CHARS);
    // Tokenized alone, a suffix may differ at its start (SentencePiece adds a dummy space), so the
    // suffix's ids are taken in context: tokenize the window with and without it. When appending
    // the suffix leaves the window's own tokens unchanged, no token spans the split, and the rest
    // are the suffix's ids as the full text would have them.
    const [windowIds, joined] = await Promise.all([
      tokenize(window, false, signal),
      tokenize(window + suffix, false, signal),
    ]);
    const safe = joined.length > windowIds.length && windowIds.every((id, i) => joined[i] === id);
    if (safe) {
      ids = [...earlier.ids, ...joined.slice(windowIds.length)];
      cache.counters.prefixHits += 1;
    } else {
      cache.counters.prefixRejected += 1;
    }
  }
  const found = ids ?? (await tokenize(text, addSpecial, signal));
  remember(b, () => cache.rememberConversation(namespace(b), messages, { text, ids: found }));
  return found;
}
