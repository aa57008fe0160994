import type { Response } from 'express';
import type { ModelServer } from '../../backends/types.js';
import type { TokenBytesCache } from '../../cache/token-bytes-cache.js';
import { TextAssembler } from '../../speculative/text-assembler.js';
import type { GeneratedToken } from '../../speculative/types.js';
import type { GenerationRequest } from '../request-types.js';
import { alternative, logprobsBody, type TokenAlternative, type TokenLogprobEntry } from './logprobs-output.js';
import { type FinishReason, OpenAiResponseBuilder, summaryHeaders, type UsageBody } from './openai-output.js';
import { SseWriter } from './sse-writer.js';

/** What turning committed tokens into a client response needs. */
export interface CompletionOutputOptions {
  request: GenerationRequest;
  res: Response;
  /** The target replica now (it can change mid-generation on failover). */
  target: () => ModelServer;
  bytesCache: TokenBytesCache;
  /** The last prompt token: the anchor for looking up the first token's text. */
  lastPromptId: number | undefined;
  isEnd: (token: GeneratedToken) => boolean;
  signal: AbortSignal;
}

/**
 * The client side of a speculative request: token bytes → text that is safe to send (UTF-8 whole,
 * stop strings honoured), logprobs from the target's results, and OpenAI chunks (streaming) or
 * one response body. The role chunk waits for the first content, so a target that fails at once
 * still gets a proper HTTP status.
 */
export class CompletionOutput {
  completionTokens = 0;
  firstTokenMs: number | undefined;
  private text = '';
  private readonly logprobs: TokenLogprobEntry[] = [];
  private readonly assembler: TextAssembler;
  private readonly builder: OpenAiResponseBuilder;
  private readonly writer: SseWriter | undefined;
  private roleSent = false;
  private previousId: number | undefined;

  constructor(private readonly o: CompletionOutputOptions) {
    this.assembler = new TextAssembler(o.request.stop);
    this.builder = new OpenAiResponseBuilder(o.request.route, o.request.model);
    this.writer = o.request.stream ? new SseWriter(o.res) : undefined;
    this.previousId = o.lastPromptId;
  }

  /** True once a stop string ended the text or the client left. */
  get done(): boolean {
    return this.assembler.stopped || this.writer?.closed === true;
  }

  /** True when a stop string ended the text. */
  get stopped(): boolean {
    return this.assembler.stopped;
  }

  /** Adds committed tokens (one round, or target-only tokens) and streams what can be sent. */
  async add(tokens: readonly GeneratedToken[]): Promise<void> {
    let delta = '';
    const chunkLogprobs: TokenLogprobEntry[] = [];
    for (const token of tokens) {
      this.completionTokens += 1;
      if (this.o.isEnd(token)) continue;
      const bytes = await this.o.bytesCache.bytesOf(token, this.previousId, this.lookup, this.o.signal);
      if (this.o.request.logprobs !== undefined) chunkLogprobs.push(await this.logprobEntry(token, bytes));
      const piece = this.assembler.push(bytes);
      this.previousId = token.id;
      delta += piece.text;
      if (piece.stopped) break;
    }
    const body =
      this.o.request.logprobs === undefined
        ? null
        : logprobsBody(this.o.request.route, chunkLogprobs, this.text.length);
    this.logprobs.push(...chunkLogprobs);
    this.text += delta;
    if (delta !== '' || chunkLogprobs.length > 0) await this.send(this.builder.chunk(delta, null, body));
  }

  /** Ends the response: the last text, the finish reason, usage (and figures as headers when not streaming). */
  async finish(finish: FinishReason, usage: UsageBody): Promise<void> {
    const tail = this.assembler.finish().text;
    this.text += tail;
    this.firstTokenMs ??= performance.now();
    if (this.writer === undefined) {
      const logprobs =
        this.o.request.logprobs === undefined ? null : logprobsBody(this.o.request.route, this.logprobs, 0);
      this.o.res.set(summaryHeaders(usage.dsd)).json(this.builder.complete(this.text, finish, usage, logprobs));
      return;
    }
    await this.send(this.builder.chunk(tail, finish));
    if (this.o.request.includeUsage) await this.send(this.builder.usageChunk(usage));
    await this.writer.done();
  }

  /** Reports a failure in-band when streaming has begun; otherwise rethrows for the error handler. */
  async fail(err: unknown): Promise<void> {
    if (this.writer === undefined || !this.writer.hasStarted) throw err;
    await this.writer.fail(err);
  }

  private readonly lookup = (ids: readonly number[], s: AbortSignal) => this.o.target().detokenize(ids, s);

  private async send(chunk: unknown): Promise<void> {
    this.firstTokenMs ??= performance.now();
    if (this.writer === undefined) return;
    if (!this.roleSent) {
      this.roleSent = true;
      const role = this.builder.roleChunk();
      if (role !== undefined) await this.writer.send(role);
    }
    await this.writer.send(chunk);
  }

  /** A committed token's logprob and top alternatives as the target reported them at its position. */
  private async logprobEntry(token: GeneratedToken, bytes: Uint8Array): Promise<TokenLogprobEntry> {
    const n = this.o.request.logprobs ?? 0;
    const own = token.logprob ?? token.top?.find((t) => t.id === token.id)?.logprob ?? -Infinity;
    const top: TokenAlternative[] = [];
    for (const alt of (token.top ?? []).slice(0, n)) {
      top.push(
        alternative(await this.o.bytesCache.bytesOf(alt, this.previousId, this.lookup, this.o.signal), alt.logprob),
      );
    }
    return { ...alternative(bytes, own), top };
  }
}
