import type { ModelServer } from '../backends/types.js';
import type { PromptInput } from './request-types.js';

/**
 * The prompt as token ids, built once and sent to both servers: chat messages through the
 * target's own chat template, text tokenized by the target (with BOS, as its own endpoints do),
 * id prompts as given.
 */
export async function buildPromptIds(input: PromptInput, target: ModelServer, signal: AbortSignal): Promise<number[]> {
  switch (input.kind) {
    case 'messages':
      return target.chatPromptIds(input.messages, signal);
    case 'text':
      return target.tokenize(input.text, true, signal);
    case 'ids':
      return input.ids;
  }
}
