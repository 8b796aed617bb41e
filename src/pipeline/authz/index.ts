import { GatewayError } from '../../errors/gateway-error.js'
import type { RequestContext, Stage } from '../stage.js'

/**
 * Least privilege per route and method: every scope in allOf, and at least one of anyOf when it is
 * non-empty. Scopes come from `scope` (space-delimited, RFC 8693 §4.2 / RFC 9068 §2.2.3) or `scp`
 * (an array, or a space-delimited string as Entra ID sends it), already parsed by authn into a Set.
 */
export function hasRequiredScopes(granted: ReadonlySet<string>, allOf: readonly string[], anyOf: readonly string[]): boolean {
  for (const s of allOf) if (!granted.has(s)) return false
  if (anyOf.length === 0) return true
  for (const s of anyOf) if (granted.has(s)) return true
  return false
}

/**
 * An `auth: certificate` route admits a certificate that carries one of its names. Fails closed
 * on an identity without certificate names (a token identity) or a route without a list.
 */
export function admitsCertificate(admitted: ReadonlySet<string> | undefined, names: readonly string[] | undefined): boolean {
  if (admitted === undefined || names === undefined) return false
  for (const name of names) if (admitted.has(name)) return true
  return false
}

export function createAuthzStage() {
  return {
    name: 'authz',
    onRequest(ctx: RequestContext): void {
      const route = ctx.route
      // The route stage answers every request it cannot route; no route here is a wiring bug.
      if (!route) throw new GatewayError('ERR_INTERNAL', { reason: 'authz_without_route' })
      if (route.auth === 'public') return
      const identity = ctx.identity
      // authn runs first and stops every unauthenticated request on a protected route; reaching
      // here without an identity is a wiring bug, so fail closed.
      if (!identity) throw new GatewayError('ERR_INTERNAL', { reason: 'authz_without_identity' })
      if (route.auth === 'certificate') {
        if (!admitsCertificate(route.certificates, identity.certificateNames)) {
          throw new GatewayError('ERR_AUTHZ_CERTIFICATE_NOT_ALLOWED', {
            reason: 'certificate_not_allowed',
            detail: 'The client certificate is not one this route admits.',
          })
        }
        return
      }
      if (!hasRequiredScopes(identity.scopes, route.allOf, route.anyOf)) {
        throw new GatewayError('ERR_AUTHZ_INSUFFICIENT_SCOPE', {
          scope: route.requiredScopeText,
          reason: 'missing_scope',
          detail: 'The access token does not grant the scope this route requires.',
        })
      }
    },
  } satisfies Stage
}
