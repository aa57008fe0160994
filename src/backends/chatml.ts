/**
 * The ChatML text llama-server falls back to for models without a chat template; the verifier
 * templates with it too, so both give the same ids.
 */
export function chatMlPrompt(messages: readonly { role: string; content: unknown }[]): string {
  const text = (c: unknown) =>
    typeof c === 'string'
      ? c
      : Array.isArray(c)
        ? c
            .map((p) =>
              typeof p === 'object' && p !== null && typeof (p as { text?: unknown }).text === 'string'
                ? (p as { text: string }).text
                : '',
            )
            .join('')
        : '';
  const turns = messages.map((m) => `<|im_start|>${m.role}\n${text(m.content)}<|im_end|>\n`);
  return `${turns.join('')}<|im_start|>assistant\n`;
}
