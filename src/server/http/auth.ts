import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { DsdError } from '../../errors.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Requires `Authorization: Bearer <key>` (or `x-api-key`) matching one of `keys`. Digests make
 * the comparison constant-time whatever the lengths; every key is compared, so timing tells
 * nothing about which one matched.
 */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  const expected = keys.map(digest);
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const bearer =
      typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined;
    const xKey = req.headers['x-api-key'];
    const presented = bearer ?? (typeof xKey === 'string' ? xKey : undefined);
    if (presented === undefined) {
      next(new DsdError('unauthorized', 'missing API key: send it as "Authorization: Bearer <key>"'));
      return;
    }
    const got = digest(presented);
    let ok = false;
    for (const key of expected) ok = timingSafeEqual(got, key) || ok;
    next(ok ? undefined : new DsdError('unauthorized', 'invalid API key'));
  };
}
