/**
 * Optional bearer-token auth: with tokens configured, every route but the liveness and readiness
 * probes (`/v2/health/*`, `/ping`, `/health`) needs `Authorization: Bearer <token>`, else 401
 * with `WWW-Authenticate` (RFC 6750). Tokens are compared by SHA-256 digest in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { HttpError } from './respond';

/** Routes a load balancer or orchestrator probes without credentials. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/v2/health/live', '/v2/health/ready', '/ping', '/health']);

const REALM = 'inferflow';
const digest = (t: string) => createHash('sha256').update(t).digest();

/** A check of requests against `tokens`; none: every request passes. */
export function bearerAuth(tokens: readonly string[]): (req: http.IncomingMessage, path: string) => void {
  const digests = tokens.map(digest);
  return (req, path) => {
    if (digests.length === 0 || OPEN_PATHS.has(path)) return;
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new HttpError(401, 'authorization required: send Authorization: Bearer <token>', { 'www-authenticate': `Bearer realm="${REALM}"` });
    const given = digest(m[1]!);
    if (!digests.some((d) => timingSafeEqual(d, given))) throw new HttpError(401, 'invalid bearer token', { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_token"` });
  };
}
