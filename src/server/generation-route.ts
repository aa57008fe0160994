import type { RequestHandler } from 'express';
import type { OpenAiRoute } from '../backends/types.js';
import { DsdError } from '../errors.js';
import { abortOnClientClose } from './abort.js';
import type { DsdContext } from './context.js';
import { passthrough } from './passthrough.js';
import { validateGenerationRequest } from './validation.js';

/** POST /v1/chat/completions and /v1/completions. */
export function generationRoute(ctx: DsdContext, route: OpenAiRoute): RequestHandler {
  return async (req, res) => {
    const request = validateGenerationRequest(route, req.body, req.headers);
    const abort = abortOnClientClose(res);
    const target = await ctx.upstreams.target(abort.signal);
    if (request.model !== target.info.modelId) {
      throw new DsdError('model_not_found', `model '${request.model}' does not exist; this server serves '${target.info.modelId}'`, { param: 'model' });
    }
    ctx.counters.passthrough += 1;
    await passthrough(request, target.server, res, abort.signal);
  };
}
