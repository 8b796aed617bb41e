import { VerifyError } from '../verify-error.js'
import { malformed } from './reject.js'

/**
 * RFC 6750 §2.1: `credentials = "Bearer" 1*SP b64token`,
 * `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
 * The auth-scheme is case-insensitive (RFC 9110 §11.1).
 */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const SCHEME_ONLY = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * The token of `verify()`'s argument, which is either an Authorization header value or a bare
 * token. Throws:
 * - ERR_AUTHN_MISSING when there is nothing, or credentials of another scheme (Basic, DPoP, ...):
 *   the client has not presented a bearer token, which is not the same as a broken one;
 * - ERR_AUTHN_MALFORMED when "Bearer" is followed by anything but one b64token.
 */
export function tokenFrom(value: string | undefined | null): string {
  if (value === undefined || value === null || value === '') throw new VerifyError('ERR_AUTHN_MISSING', { reason: 'no_credentials' })
  if (typeof value !== 'string') throw malformed('bad_authorization_syntax', 'Use "Authorization: Bearer <token>".')
  if (value.indexOf(' ') === -1) {
    // No scheme: a bare token, as when the caller already took it out of the header. A lone
    // word that is not b64token syntax is neither a token nor a scheme we know.
    if (value.toLowerCase() !== 'bearer' && B64TOKEN.test(value)) return value
    throw malformed('bad_authorization_syntax', 'Use "Authorization: Bearer <token>".')
  }
  const parsed = parseAuthorization(value)
  if (parsed.kind === 'bearer') return parsed.token
  if (parsed.kind === 'other-scheme') throw new VerifyError('ERR_AUTHN_MISSING', { reason: 'unsupported_scheme' })
  throw malformed('bad_authorization_syntax', 'Use "Authorization: Bearer <token>".')
}

/** Result of reading one Authorization field value. */
export type AuthorizationValue =
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'other-scheme' }
  | { readonly kind: 'malformed' }

/** One Authorization field value: a bearer token, another scheme, or broken bearer syntax. */
export function parseAuthorization(value: string): AuthorizationValue {
  const m = BEARER.exec(value)
  if (m) return { kind: 'bearer', token: m[1] }
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  // "Bearer" with a bad or missing token is a broken bearer credential, not another scheme.
  if (scheme.toLowerCase() === 'bearer' || !SCHEME_ONLY.test(scheme)) return { kind: 'malformed' }
  return { kind: 'other-scheme' }
}

/** The parts of an incoming request the adapters read (node:http IncomingMessage has them all). */
export interface RequestLike {
  readonly headers: { readonly authorization?: string | undefined }
  /** Raw header list, name/value alternating; node keeps only the first Authorization in `headers`. */
  readonly rawHeaders?: readonly string[]
  /** Request target, for the query-string check. */
  readonly url?: string | undefined
  /** The connection: a TLS socket's client certificate binds certificate-bound tokens (RFC 8705). */
  readonly socket?: object | null
}

/** Counts Authorization fields in the raw header list (node keeps only the first in `headers`). */
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
 * Names are percent-decoded and compared case-insensitively, and `;` counts as a separator, so no
 * spelling a framework might accept slips through. So are the spellings that query parsers turn
 * into that name: a bracket suffix (`access_token[]`, `access_token[0]`: an array or a hash in
 * qs, Rack and PHP) and PHP's renaming of ".", " " and a lone "[" in a name to "_"
 * (`access.token` is `$_GET['access_token']`).
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
    // Lowercased again: an escape can spell an uppercase letter (%4E is "N").
    if (parameterBase(name.toLowerCase()) === 'access_token') return true
  }
  return false
}

/** The name a query parser files a (decoded, lowercase) parameter under: see hasQueryToken. */
function parameterBase(name: string): string {
  let base = name.trim()
  const bracket = base.indexOf('[')
  if (bracket > 0 && base.indexOf(']', bracket) !== -1) base = base.slice(0, bracket)
  // Only a name as long as access_token can become it.
  return base.length === 'access_token'.length ? base.replace(/[. []/g, '_') : base
}

/**
 * The Authorization value of a request, after the request-level rules the gateway applies too:
 * - a token in the query is refused (RFC 6750 §2.3 is a SHOULD NOT; URLs end up in logs and
 *   Referer headers, RFC 6750 §5.3);
 * - two Authorization fields are refused (which one a framework reads is undefined);
 * - form-encoded body tokens (RFC 6750 §2.2) are never read.
 */
export function authorizationOf(req: RequestLike): string | undefined {
  const q = req.url === undefined ? -1 : req.url.indexOf('?')
  if (q !== -1 && hasQueryToken(req.url!.slice(q))) {
    throw malformed('query_token', 'Send the access token in the Authorization header, not in the URL.')
  }
  const value = req.headers.authorization
  if (value !== undefined && req.rawHeaders !== undefined && countAuthorizationHeaders(req.rawHeaders) > 1) {
    throw malformed('multiple_authorization', 'Send exactly one Authorization header.')
  }
  return value
}
