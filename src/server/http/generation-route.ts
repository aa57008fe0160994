import type { RequestHandler, Response } from 'express';
import type { OpenAiRoute } from '../../backends/types.js';
import { DsdError, UpstreamError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { DsdContext } from '../context.js';
import { passthrough, upstreamIsolation } from '../generation/passthrough.js';
import { serveSpeculative } from '../generation/speculative-responder.js';
import { acceptsModel, servedModelName } from '../model-names.js';
import type { GenerationRequest } from '../request-types.js';
import { affinityKey } from '../upstreams/affinity.js';
import type { ConnectedServer } from '../upstreams/connected-server.js';
import { abortOnClientClose } from './abort.js';
import { cacheScopeOf } from './tenant.js';
import { validateGenerationRequest } from './validation.js';

/**
 * Why this request goes straight to the target, or undefined when the engine may serve it. The
 * engine reproduces the target exactly; logprobs come from the target's verification results,
 * except under rejection sampling, whose verification asks for post-sampling probabilities.
 */
function passthroughReason(ctx: DsdContext, request: GenerationRequest): string | undefined {
  if (ctx.upstreams.drafts.size === 0) return 'no_draft_configured';
  if (request.passthroughReason !== undefined) return 'unsupported_request';
  if (request.speculation.enabled === false || request.speculation.window === 0) return 'speculation_off';
  const rejection = request.temperature > 0 && ctx.config.speculation.acceptance === 'rejection';
  if (request.logprobs !== undefined && rejection) return 'unsupported_request';
  return undefined;
}

/** POST /v1/chat/completions and /v1/completions. */
export function generationRoute(ctx: DsdContext, route: OpenAiRoute): RequestHandler {
  return async (req, res) => {
    if (ctx.draining)
      throw new DsdError('server_shutting_down', 'the server is shutting down; retry on another instance', {
        retryAfterSeconds: 1,
      });
    const request = validateGenerationRequest(route, req.body, req.headers, ctx.config.limits);
    request.cacheScope = cacheScopeOf(ctx.config, res.locals.tenant as string | undefined, req.headers);
    const abort = abortOnClientClose(res);
    const release = await ctx.admission.acquire(abort.signal);
    res.once('close', release);
    res.locals.summary = { model: request.model, stream: request.stream };
    if (ctx.config.logPrompts) res.locals.summary.prompt = request.input;
    const keyOf = () => affinityKey(request.input, request.cacheScope);
    const tried = new Set<string>();
    for (;;) {
      const target = await ctx.upstreams.target(abort.signal, keyOf, tried);
      if (!acceptsModel(ctx.config.models, target.info.modelId, request.model)) {
        throw new DsdError(
          'model_not_found',
          `model '${request.model}' does not exist; this server serves ` +
            `'${servedModelName(ctx.config.models, target.info.modelId)}'`,
          { param: 'model' },
        );
      }
      try {
        await serve(ctx, request, target, res, abort.signal);
        return;
      } catch (err) {
        // A replica that cannot be reached before any byte went out: move to the next one.
        const unreachable =
          err instanceof UpstreamError && err.role === 'target' && err.code === 'upstream_unavailable';
        tried.add(target.server.baseUrl);
        if (!unreachable || res.headersSent || tried.size >= ctx.upstreams.targets.size) throw err;
        ctx.upstreams.targets.failed(target.server.baseUrl);
        (res.locals.logger as Logger | undefined)?.warn('target replica unreachable; failing over', {
          replica: target.server.baseUrl,
        });
      }
    }
  };
}

async function serve(
  ctx: DsdContext,
  request: GenerationRequest,
  target: ConnectedServer,
  res: Response,
  signal: AbortSignal,
): Promise<void> {
  let reason = passthroughReason(ctx, request);
  // A target that takes nothing passed through generates alone through the engine instead.
  const engineOnly = target.server.passthrough === false && reason !== 'unsupported_request';
  if (reason === undefined || engineOnly) {
    const served = await serveSpeculative({ ctx, request, target, res, signal });
    if (served) return;
    reason = 'no_draft_or_planned_target_only';
  }
  ctx.counters.passthrough += 1;
  ctx.metrics.fallbacks.inc({ reason });
  const noPromptCache = upstreamIsolation(ctx.config.cacheScope, request.cacheScope).noPromptCache === true;
  await passthrough({ request, target: target.server, res, signal, metrics: ctx.metrics, reason, noPromptCache });
}
