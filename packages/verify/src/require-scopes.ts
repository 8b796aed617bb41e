import type { Identity } from './types.js'
import { VerifyError } from './verify-error.js'

/**
 * True when the identity holds every one of `scopes` (exact, case-sensitive strings, RFC 6749
 * §3.3). No scopes asked: true.
 *
 * @example
 * ```ts
 * if (hasScopes(identity, 'orders:write')) showEditButton()
 * ```
 */
export function hasScopes(identity: Identity, ...scopes: string[]): boolean {
  for (const s of scopes) if (!identity.scopes.has(s)) return false
  return true
}

/**
 * Throws ERR_AUTHZ_INSUFFICIENT_SCOPE (403) unless the identity holds every one of `scopes`. The
 * error names all of them in the challenge's `scope` parameter, as RFC 6750 §3 suggests, so the
 * client knows what to ask its authorization server for.
 *
 * @example
 * ```ts
 * const identity = await verifier.verify(req.headers.authorization)
 * requireScopes(identity, 'orders:read', 'orders:write')
 * ```
 */
export function requireScopes(identity: Identity, ...scopes: string[]): void {
  if (!hasScopes(identity, ...scopes)) {
    throw new VerifyError('ERR_AUTHZ_INSUFFICIENT_SCOPE', { reason: 'missing_scope', scope: scopes.join(' ') })
  }
}
