import type { Response } from 'express';
import { ClientAbortError } from '../../errors.js';

/**
 * An AbortSignal that fires when the client goes away before the response is finished. Uses
 * `res.on('close')`: the request stream closes as soon as the body is read, long before that.
 */
export function abortOnClientClose(res: Response): AbortController {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new ClientAbortError());
  });
  return controller;
}
