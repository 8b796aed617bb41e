import type { Header } from './jwt-parse.js'
import { normalizeTyp, type TokenPolicy } from './policy.js'
import { invalidToken } from './reject.js'

/** Header members that would make us fetch or trust a key named by the token itself. */
const EMBEDDED_KEY_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const

/**
 * JOSE header rules that depend on nothing configured, the gateway's. Run first, before any key
 * is looked up, so the most dangerous forgeries are refused whatever they claim.
 */
export function checkHeaderShape(header: Header): void {
  // RFC 8725 §3.1 / §2.1: "none" is never acceptable for an access token, in any casing,
  // whatever the options say (alg values are case-sensitive, so "None" is not even "none", but
  // some libraries once compared case-insensitively; refuse all of them).
  const alg = header.alg
  if (typeof alg !== 'string' || alg.length === 0 || alg.toLowerCase() === 'none') throw invalidToken('alg_not_allowed')
  // RFC 8725 §3.10: keys come only from the configured JWKS. A token that carries a key (jwk, x5c)
  // or names where to fetch one (jku, x5u) is refused outright; we never follow the URL.
  for (const name of EMBEDDED_KEY_HEADERS) if (header[name] !== undefined) throw invalidToken('embedded_key_header')
  // RFC 7515 §4.1.11: a recipient MUST reject a JWS with a crit extension it does not
  // understand. We implement no extension, so any crit (b64 included, RFC 7797) is refused.
  if (header.crit !== undefined) throw invalidToken('crit')
  if (header.kid !== undefined && typeof header.kid !== 'string') throw invalidToken('malformed')
  if (header.typ !== undefined && typeof header.typ !== 'string') throw invalidToken('typ')
}

/** The configured header rules: the algorithm allowlist and explicit typing. */
export function checkHeaderPolicy(header: Header, policy: TokenPolicy): void {
  const alg = header.alg as string
  // The allowlist: also what keeps HS256-signed-with-the-RSA-public-key out (RFC 8725 §2.1),
  // since HS* is only ever in it with a configured secret, and then verified with that secret only.
  if (!policy.algorithms.has(alg)) throw invalidToken('alg_not_allowed')
  const typ = header.typ as string | undefined
  if (policy.requiredTyp !== undefined) {
    // RFC 8725 §3.11 explicit typing: a token of another kind cannot pass for this one.
    if (typ === undefined || normalizeTyp(typ) !== policy.requiredTyp) throw invalidToken('typ')
  } else if (typ !== undefined) {
    // RFC 8725 §3.11: an explicit type that names another kind of JWT (logout+jwt, dpop+jwt,
    // secevent+jwt, ...) must not be accepted as an access token. "JWT" and "*at+jwt" pass.
    const t = normalizeTyp(typ)
    if (t.endsWith('+jwt') && !t.endsWith('at+jwt')) throw invalidToken('typ')
  }
}
