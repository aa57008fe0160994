/** A one-line progress bar on stderr (only when stderr is a terminal; silent otherwise). */
export class ProgressBar {
  private done = 0;
  private readonly enabled: boolean;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    private readonly label: string,
    stream: NodeJS.WriteStream = process.stderr,
    private readonly out: NodeJS.WriteStream = stream,
  ) {
    this.enabled = stream.isTTY === true;
  }

  /** Counts one unit of work done. */
  tick(): void {
    this.done += 1;
    if (!this.enabled) return;
    const width = 30;
    const filled = Math.round((this.done / this.total) * width);
    const seconds = ((Date.now() - this.started) / 1000).toFixed(0);
    this.out.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total} ${seconds} s`,
    );
    if (this.done >= this.total) this.out.write('\n');
  }
}
