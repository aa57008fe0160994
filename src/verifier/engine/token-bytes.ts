/** How an engine turns tokens into text. */
export interface Detokenizer {
  tokenize(text: string, addSpecial: boolean): Promise<number[]>;
  detokenize(ids: readonly number[]): Promise<string>;
}

/**
 * Token id → the exact bytes it adds to a text, found once per token by detokenizing it after an
 * ordinary anchor token and taking the difference, so that the leading space a tokenizer drops at
 * the start of a text is kept (the edge's TokenBytesCache does the same across the network).
 */
export class TokenBytes {
  private readonly known = new Map<number, Uint8Array>();
  private anchor: Promise<{ ids: number[]; text: string }> | undefined;
  private readonly encoder = new TextEncoder();

  constructor(private readonly engine: Detokenizer) {}

  /** Bytes told in band by a server (llama-server sends them with every token). */
  learn(id: number, bytes: Uint8Array): void {
    this.known.set(id, bytes);
  }

  async of(id: number): Promise<Uint8Array> {
    const known = this.known.get(id);
    if (known !== undefined) return known;
    this.anchor ??= this.engine
      .tokenize('a', false)
      .then(async (ids) => ({ ids, text: await this.engine.detokenize(ids) }));
    const anchor = await this.anchor;
    const text = await this.engine.detokenize([...anchor.ids, id]);
    const bytes = this.encoder.encode(text.slice(anchor.text.length));
    this.known.set(id, bytes);
    return bytes;
  }
}
