/** Text released by the assembler, and whether a stop string ended the output. */
export interface AssembledText {
  text: string;
  stopped: boolean;
}

/**
 * Turns token bytes into text that is safe to send: never a broken UTF-8 character (a character
 * may span tokens), never text at or after a stop string, and never the start of a possible stop
 * string until the next bytes rule it out (a stop string may span tokens and rounds).
 */
export class TextAssembler {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private done = false;
  private readonly longestStop: number;

  constructor(private readonly stops: readonly string[]) {
    this.longestStop = Math.max(0, ...stops.map((s) => s.length));
  }

  /** True once a stop string was seen; later input is ignored. */
  get stopped(): boolean {
    return this.done;
  }

  /** Adds one token's bytes; returns the text that can be released now. */
  push(bytes: Uint8Array): AssembledText {
    if (this.done) return { text: '', stopped: true };
    this.pending += this.decoder.decode(bytes, { stream: true });
    return this.release(false);
  }

  /** End of generation: flushes held-back text (an incomplete character becomes U+FFFD). */
  finish(): AssembledText {
    if (this.done) return { text: '', stopped: true };
    this.pending += this.decoder.decode();
    return this.release(true);
  }

  private release(final: boolean): AssembledText {
    let hit = -1;
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && (hit < 0 || at < hit)) hit = at;
    }
    if (hit >= 0) {
      const text = this.pending.slice(0, hit);
      this.pending = '';
      this.done = true;
      return { text, stopped: true };
    }
    const keep = final ? 0 : this.heldBack();
    const text = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return { text, stopped: false };
  }

  /** Length of the longest suffix of the pending text that begins some stop string. */
  private heldBack(): number {
    const max = Math.min(this.longestStop - 1, this.pending.length);
    for (let n = max; n > 0; n--) {
      const suffix = this.pending.slice(this.pending.length - n);
      if (this.stops.some((s) => s.startsWith(suffix))) return n;
    }
    return 0;
  }
}
