import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { DsdError } from '../../errors.js';
import { tenantOf } from './key-limits.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Whether `presented` is one of `keys`, compared in constant time (every key, by digest). */
export function keyMatches(keys: readonly string[], presented: string): boolean {
  const got = digest(presented);
  let ok = false;
  for (const key of keys) ok = timingSafeEqual(got, digest(key)) || ok;
  return ok;
}

/**
 * Requires `Authorization: Bearer <key>` (or `x-api-key`) matching one of `keys`. Digests make
 * the comparison constant-time whatever the lengths; every key is compared, so timing tells
 * nothing about which one matched.
 */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  return (req, res, next) => {
    const header = req.headers.authorization;
    const bearer =
      typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined;
    const xKey = req.headers['x-api-key'];
    const presented = bearer ?? (typeof xKey === 'string' ? xKey : undefined);
    if (presented === undefined) {
      next(new DsdError('unauthorized', 'missing API key: send it as "Authorization: Bearer <key>"'));
      return;
    }
    if (!keyMatches(keys, presented)) return next(new DsdError('unauthorized', 'invalid API key'));
    res.locals.tenant = tenantOf(presented);
    next();
  };
}
