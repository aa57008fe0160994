import type { RequestHandler } from 'express';
import type { OpenAiRoute } from '../backends/types.js';
import { DsdError } from '../errors.js';
import { abortOnClientClose } from './abort.js';
import type { DsdContext } from './context.js';
import { passthrough } from './passthrough.js';
import type { GenerationRequest } from './request-types.js';
import { serveSpeculative } from './speculative-responder.js';
import { validateGenerationRequest } from './validation.js';

/**
 * Whether the engine reproduces the target exactly for this request. Logprobs come from the
 * target's verification results, except under rejection sampling, whose verification asks for
 * post-sampling probabilities rather than the model's own.
 */
function canSpeculate(ctx: DsdContext, request: GenerationRequest): boolean {
  if (ctx.upstreams.drafts.size === 0 || request.passthroughReason !== undefined) return false;
  if (request.speculation.enabled === false || request.speculation.window === 0) return false;
  const rejection = request.temperature > 0 && ctx.config.speculation.acceptance === 'rejection';
  return request.logprobs === undefined || !rejection;
}

/** POST /v1/chat/completions and /v1/completions. */
export function generationRoute(ctx: DsdContext, route: OpenAiRoute): RequestHandler {
  return async (req, res) => {
    const request = validateGenerationRequest(route, req.body, req.headers);
    const abort = abortOnClientClose(res);
    const target = await ctx.upstreams.target(abort.signal);
    if (request.model !== target.info.modelId) {
      throw new DsdError('model_not_found', `model '${request.model}' does not exist; this server serves '${target.info.modelId}'`, { param: 'model' });
    }
    if (canSpeculate(ctx, request)) {
      const served = await serveSpeculative({ ctx, request, target, res, signal: abort.signal });
      if (served) return;
    }
    ctx.counters.passthrough += 1;
    await passthrough(request, target.server, res, abort.signal);
  };
}
