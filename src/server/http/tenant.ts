import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { DsdConfig } from '../../config/types.js';

/**
 * The cache scope of a request: '' when caches are global (DSD_CACHE_SCOPE=global), else a digest
 * of its tenant. A tenant is the API key that authenticated the request (`tenant`, already a
 * digest) plus, when DSD_TENANT_HEADER names one, that header as set by a trusted gateway. With
 * neither, every request is the one anonymous tenant. The scope keys dsd's prompt caches, draft
 * slot pinning and replica affinity, and is sent to vLLM as `cache_salt`: it is a digest with its
 * own prefix, so it says nothing about the key or the metrics label.
 */
export function cacheScopeOf(
  config: Pick<DsdConfig, 'cacheScope' | 'tenantHeader'>,
  tenant: string | undefined,
  headers: IncomingHttpHeaders,
): string {
  if (config.cacheScope === 'global') return '';
  const named = config.tenantHeader === undefined ? undefined : headers[config.tenantHeader];
  const header = Array.isArray(named) ? named.join(',') : (named ?? '');
  const input = `dsd-cache-scope\u0000${tenant ?? 'anonymous'}\u0000${header}`;
  let scope = recentScopes.get(input);
  if (scope === undefined) {
    scope = createHash('sha256').update(input).digest('base64url').slice(0, 22);
    // A few tenants send nearly every request: remember their digests, boundedly.
    if (recentScopes.size >= 1024) recentScopes.clear();
    recentScopes.set(input, scope);
  }
  return scope;
}

const recentScopes = new Map<string, string>();
