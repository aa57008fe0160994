import type { Response } from 'express';
import { errorBody, toDsdError } from '../../errors.js';

/**
 * Writes OpenAI server-sent events with back-pressure: `send` resolves only once the socket has
 * room again, so a slow client slows the upstream read instead of growing a buffer.
 */
export class SseWriter {
  private started = false;

  constructor(private readonly res: Response) {}

  /** True once the client is gone; producers should stop. */
  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  /** True once the first byte was sent (errors must then go in-band). */
  get hasStarted(): boolean {
    return this.started;
  }

  /** Sends the SSE headers (idempotent). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.status(200);
    this.res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    this.res.setHeader('cache-control', 'no-cache');
    this.res.setHeader('x-accel-buffering', 'no');
    this.res.flushHeaders();
  }

  /** Sends one `data:` event, waiting for drain when the socket buffer is full. */
  async send(payload: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Ends the stream with `data: [DONE]`. */
  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.res.end();
  }

  /** Reports an error in-band (streaming has begun) and ends the stream. */
  async fail(err: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(errorBody(toDsdError(err)))}\n\n`);
    this.res.end();
  }

  private async write(text: string): Promise<void> {
    this.start();
    if (this.closed) return;
    if (this.res.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}
