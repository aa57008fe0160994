/** Special token ids of the demo vocabulary (llama-style: BOS 1, EOS 2). */
export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;

const SPECIALS = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>'];
const BYTE_BASE = SPECIALS.length;
const PIECE_PATTERN = /<\|im_start\|>|<\|im_end\|>|<\/?s>| ?[A-Za-z]+|'[a-z]+| ?\d+| ?[^\sA-Za-z\d]|\n| +|[\s\S]/gu;
const encoder = new TextEncoder();

/**
 * A small word-level tokenizer for the demo backends: specials, 256 byte-fallback tokens
 * (`<0xNN>`, so any text round-trips and characters can span tokens), single ASCII characters,
 * and the words of a training text with their leading space (`" girl"`), as SentencePiece does.
 */
export class WordTokenizer {
  private readonly pieces: string[];
  private readonly ids = new Map<string, number>();

  private constructor(pieces: string[]) {
    this.pieces = pieces;
    pieces.forEach((p, i) => {
      if (!this.ids.has(p)) this.ids.set(p, i);
    });
  }

  /** Builds the vocabulary from a training text. */
  static fromText(text: string): WordTokenizer {
    const pieces = [...SPECIALS];
    for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    for (let c = 32; c < 127; c++) pieces.push(String.fromCharCode(c));
    pieces.push('\n');
    const seen = new Set(pieces);
    for (const piece of text.match(PIECE_PATTERN) ?? []) {
      if (!seen.has(piece)) {
        seen.add(piece);
        pieces.push(piece);
      }
    }
    return new WordTokenizer(pieces);
  }

  /** Number of tokens in the vocabulary. */
  get size(): number {
    return this.pieces.length;
  }

  /** Text to ids; `parseSpecial` lets `<s>`-style text become special tokens. */
  encode(text: string, options: { addBos: boolean; parseSpecial: boolean }): number[] {
    const out = options.addBos ? [BOS_ID] : [];
    for (const piece of text.match(PIECE_PATTERN) ?? []) {
      const id = this.ids.get(piece);
      const special = id !== undefined && id < BYTE_BASE;
      if (id !== undefined && (!special || options.parseSpecial)) out.push(id);
      else out.push(...this.fallback(piece));
    }
    return out;
  }

  private fallback(piece: string): number[] {
    const out: number[] = [];
    for (const ch of piece) {
      const id = this.ids.get(ch);
      if (id !== undefined && id >= BYTE_BASE + 256) out.push(id);
      else for (const b of encoder.encode(ch)) out.push(BYTE_BASE + b);
    }
    return out;
  }

  /** The bytes a token contributes to generated text (none for BOS/EOS/UNK). */
  bytes(id: number): Uint8Array {
    if (id >= BYTE_BASE && id < BYTE_BASE + 256) return Uint8Array.of(id - BYTE_BASE);
    if (id <= EOS_ID) return new Uint8Array();
    return encoder.encode(this.pieces[id] ?? '');
  }

  /** The printable piece of a token (as llama.cpp's `token` field). */
  piece(id: number): string {
    return this.pieces[id] ?? '';
  }

  /** True for ids inside the vocabulary. */
  has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.pieces.length;
  }

  /** Ids to text; invalid UTF-8 becomes U+FFFD. `withSpecials` renders `<s>` as llama.cpp does. */
  decode(ids: readonly number[], withSpecials = false): string {
    const chunks: Uint8Array[] = ids.map((id) =>
      withSpecials && id <= EOS_ID ? encoder.encode(this.piece(id)) : this.bytes(id),
    );
    return new TextDecoder().decode(Buffer.concat(chunks));
  }
}
