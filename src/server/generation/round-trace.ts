import { createWriteStream, type WriteStream } from 'node:fs';

/** One speculative round, as written to DSD_TRACE_FILE (one JSON object per line). */
export interface RoundTraceLine {
  time: string;
  requestId: string | undefined;
  draft: string;
  target: string;
  k: number;
  accepted: number;
  committed: number;
  draftMs: number;
  verifyMs: number;
  wallMs: number;
  reason: string;
}

/**
 * Appends speculative rounds to a JSONL file, for replay in the simulator and offline analysis.
 * Writes are buffered by the stream; a full buffer drops lines rather than slowing requests.
 */
export class RoundTrace {
  private readonly stream: WriteStream;
  dropped = 0;

  constructor(path: string) {
    this.stream = createWriteStream(path, { flags: 'a' });
    this.stream.on('error', () => {
      this.dropped += 1;
    });
  }

  write(line: RoundTraceLine): void {
    if (this.stream.writableNeedDrain) {
      this.dropped += 1;
      return;
    }
    this.stream.write(`${JSON.stringify(line)}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }
}
