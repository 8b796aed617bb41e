import { GatewayError } from '../../errors/gateway-error.js'
import { malformed } from './reject.js'

/**
 * RFC 6750 §2.1: `credentials = "Bearer" 1*SP b64token`,
 * `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
 * The auth-scheme is case-insensitive (RFC 9110 §11.1).
 */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const SCHEME_ONLY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Counts Authorization fields in the raw header list (node keeps only the first in req.headers). */
export function countAuthorizationHeaders(rawHeaders: readonly string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 13 && name.toLowerCase() === 'authorization') n++
  }
  return n
}

/**
 * True when the raw query (with or without its leading "?") carries an `access_token` parameter.
 * Names are percent-decoded and compared case-insensitively, and `;` counts as a separator, so
 * that no spelling an upstream framework might accept slips through.
 */
export function hasQueryToken(query: string): boolean {
  if (query.length < 2) return false
  const lower = query.toLowerCase()
  if (!lower.includes('access') && !lower.includes('%')) return false
  const start = lower.charCodeAt(0) === 63 /* ? */ ? 1 : 0
  for (const part of lower.slice(start).split(/[&;]/)) {
    const eq = part.indexOf('=')
    let name = eq === -1 ? part : part.slice(0, eq)
    if (name.includes('%') || name.includes('+')) {
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '))
      } catch {
        // not valid percent-encoding: compare the raw text
      }
    }
    if (name.trim() === 'access_token') return true
  }
  return false
}

/** Result of reading one Authorization field value. */
export type AuthorizationValue =
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'other-scheme' }
  | { readonly kind: 'malformed' }

export function parseAuthorization(value: string): AuthorizationValue {
  const m = BEARER.exec(value)
  if (m) return { kind: 'bearer', token: m[1] }
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  // "Bearer" with a bad or missing token is a broken bearer credential, not another scheme.
  if (scheme.toLowerCase() === 'bearer' || !SCHEME_ONLY.test(scheme)) return { kind: 'malformed' }
  return { kind: 'other-scheme' }
}

/**
 * Extracts the bearer token of a request, or throws:
 * - ERR_AUTHN_MALFORMED when the token is in the query (RFC 6750 §2.3 is a SHOULD NOT for clients;
 *   we refuse it because URLs end up in logs and Referer headers, RFC 6750 §5.3), when there are two
 *   Authorization fields (which one the upstream reads is undefined), or when the field is not
 *   valid RFC 6750 §2.1 syntax;
 * - ERR_AUTHN_MISSING when there are no bearer credentials. Form-encoded body tokens (§2.2) are
 *   never read, so such a request counts as having no credentials.
 */
export function extractBearer(rawHeaders: readonly string[], authorization: string | undefined, query: string): string {
  if (hasQueryToken(query)) {
    throw malformed('query_token', 'Send the access token in the Authorization header, not in the URL.')
  }
  const count = authorization === undefined ? 0 : countAuthorizationHeaders(rawHeaders)
  if (count === 0) throw new GatewayError('ERR_AUTHN_MISSING', { reason: 'no_credentials' })
  if (count > 1) throw malformed('multiple_authorization', 'Send exactly one Authorization header.')
  const parsed = parseAuthorization(authorization!)
  if (parsed.kind === 'bearer') return parsed.token
  if (parsed.kind === 'other-scheme') {
    // Another scheme is not a broken bearer credential: the client simply has not presented one.
    throw new GatewayError('ERR_AUTHN_MISSING', { reason: 'unsupported_scheme' })
  }
  throw malformed('bad_authorization_syntax', 'Use "Authorization: Bearer <token>".')
}
