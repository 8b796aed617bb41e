import { GatewayError } from '../../errors/gateway-error.js'
import type { Identity } from '../stage.js'
import { invalidToken } from './reject.js'

/**
 * The one place where JOSE header and JWT claim rules live. Both signature paths (node:crypto and
 * jose) call these functions, so a token is judged by identical rules whichever path verified it.
 */

/** What one issuer accepts, compiled once from config. */
export interface TokenPolicy {
  readonly issuer: string
  /** Empty = any audience (the config lint warns about it). */
  readonly audiences: readonly string[]
  /** Algorithms this issuer may use: config minus "none" and minus HMAC without a shared secret. */
  readonly algorithms: ReadonlySet<string>
  readonly clockSkewSec: number
  readonly maxTokenLifetimeSec: number
  /** Normalized (see normalizeTyp) or undefined when not required. */
  readonly requiredTyp: string | undefined
}

export type Header = Readonly<Record<string, unknown>>
export type Payload = Readonly<Record<string, unknown>>

/**
 * RFC 9068 §4 / RFC 2045: media types compare case-insensitively, and the "application/" prefix
 * may be omitted in `typ` (RFC 7515 §4.1.9).
 */
export function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase()
  return lower.startsWith('application/') ? lower.slice(12) : lower
}

/** Header members that would make us fetch or trust a key named by the token itself. */
const EMBEDDED_KEY_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const

/**
 * Checks that do not depend on the issuer; run before issuer selection so that the most
 * dangerous forgeries are refused whatever `iss` they claim.
 */
export function checkHeaderShape(header: Header): void {
  // RFC 8725 §3.1 / §2.1: "none" is never acceptable for an access token, in any casing,
  // whatever the config says (alg values are case-sensitive, so "None" is not even "none",
  // but some libraries once compared case-insensitively; refuse all of them).
  const alg = header.alg
  if (typeof alg !== 'string' || alg.length === 0 || alg.toLowerCase() === 'none') throw invalidToken('alg_not_allowed')
  // RFC 8725 §3.10: keys come only from the configured issuer's JWKS. A token that names a key
  // (jwk, x5c) or where to fetch one (jku, x5u) is refused outright; we never follow the URL.
  for (const name of EMBEDDED_KEY_HEADERS) if (header[name] !== undefined) throw invalidToken('embedded_key_header')
  // RFC 7515 §4.1.11: a recipient MUST reject a JWS with a crit extension it does not
  // understand. We implement no extension, so any crit (b64 included, RFC 7797) is refused.
  if (header.crit !== undefined) throw invalidToken('crit')
  if (header.kid !== undefined && typeof header.kid !== 'string') throw invalidToken('malformed')
  if (header.typ !== undefined && typeof header.typ !== 'string') throw invalidToken('typ')
}

/** Issuer-specific header checks: the algorithm allowlist and explicit typing. */
export function checkHeaderPolicy(header: Header, policy: TokenPolicy): void {
  if (!policy.algorithms.has(header.alg as string)) throw invalidToken('alg_not_allowed')
  const typ = header.typ as string | undefined
  if (policy.requiredTyp !== undefined) {
    if (typ === undefined || normalizeTyp(typ) !== policy.requiredTyp) throw invalidToken('typ')
  } else if (typ !== undefined) {
    // RFC 8725 §3.11: an explicit type that names another kind of JWT (logout+jwt, dpop+jwt,
    // secevent+jwt, ...) must not be accepted as an access token. "JWT" and "*at+jwt" pass.
    const t = normalizeTyp(typ)
    if (t.endsWith('+jwt') && !t.endsWith('at+jwt')) throw invalidToken('typ')
  }
}

const isNumericDate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

/**
 * RFC 7519 §4.1 and RFC 9068 §4 claim checks, at `nowMs` (injected clock).
 * Throws ERR_AUTHN_EXPIRED for an expired token and ERR_AUTHN_INVALID_TOKEN otherwise.
 */
export function checkClaims(payload: Payload, policy: TokenPolicy, nowMs: number): void {
  const now = nowMs / 1000
  const skew = policy.clockSkewSec
  // RFC 7519 §4.1.1: exact string comparison, no normalization of trailing slashes.
  if (payload.iss !== policy.issuer) throw invalidToken('wrong_issuer')
  // An ID token is not an access token (RFC 9068 §4, OIDC Core §2): nonce and at_hash/c_hash
  // only ever appear in ID tokens, so a token carrying them is refused even when typ is absent.
  if (payload.nonce !== undefined || payload.at_hash !== undefined || payload.c_hash !== undefined) {
    throw invalidToken('id_token_markers')
  }
  const { exp, nbf, iat } = payload
  // RFC 9068 §2.2: exp is REQUIRED for JWT access tokens; a token that never expires is refused.
  if (exp === undefined) throw invalidToken('missing_exp')
  if (!isNumericDate(exp)) throw invalidToken('claim_type')
  if (nbf !== undefined && !isNumericDate(nbf)) throw invalidToken('claim_type')
  if (iat !== undefined && !isNumericDate(iat)) throw invalidToken('claim_type')
  if (nbf !== undefined && nbf > now + skew) throw invalidToken('not_yet_valid')
  if (iat !== undefined && iat > now + skew) throw invalidToken('iat_in_future')
  // RFC 7519 §4.1.4: the token MUST NOT be accepted on or after exp (plus the allowed skew).
  if (now - skew >= exp) throw new GatewayError('ERR_AUTHN_EXPIRED', { reason: 'expired' })
  // A token valid for longer than the issuer's policy allows is more likely stolen-and-replayed or
  // minted by a compromised signer than legitimate; refuse it (RFC 8725 §3.10 spirit).
  const lifetime = exp - (iat ?? now)
  if (lifetime > policy.maxTokenLifetimeSec) throw invalidToken('lifetime')
  checkAudience(payload.aud, policy.audiences)
  checkClaimTypes(payload)
}

/** RFC 7519 §4.1.3: aud is a string or an array of strings; one of them must be ours. */
function checkAudience(aud: unknown, accepted: readonly string[]): void {
  if (accepted.length === 0) {
    if (aud !== undefined && typeof aud !== 'string' && !isStringArray(aud)) throw invalidToken('claim_type')
    return
  }
  if (typeof aud === 'string') {
    if (accepted.includes(aud)) return
  } else if (isStringArray(aud)) {
    for (const a of aud) if (accepted.includes(a)) return
  }
  throw invalidToken('wrong_audience')
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string'

/** Claims later stages read must have the type they expect, or the token is refused. */
function checkClaimTypes(p: Payload): void {
  if (!optionalString(p.sub) || !optionalString(p.client_id) || !optionalString(p.azp) || !optionalString(p.jti)) {
    throw invalidToken('claim_type')
  }
  if (!optionalString(p.scope) || (p.scp !== undefined && !isStringArray(p.scp))) throw invalidToken('claim_type')
}

/**
 * Scopes from `scope` (space-delimited, RFC 9068 §2.2.3 / RFC 8693 §4.2), else from `scp`
 * (array, used by several IdPs).
 */
export function parseScopes(payload: Payload): Set<string> {
  const scope = payload.scope
  if (typeof scope === 'string') {
    const set = new Set<string>()
    for (const s of scope.split(' ')) if (s) set.add(s)
    return set
  }
  if (Array.isArray(payload.scp)) return new Set(payload.scp as string[])
  return new Set()
}

/** The Identity later stages read. Frozen: the same object is shared by cached requests. */
export function buildIdentity(payload: Payload, issuerId: string, tokenDigest: string): Identity {
  return Object.freeze({
    issuer: payload.iss as string,
    issuerId,
    subject: payload.sub as string | undefined,
    // RFC 9068 §2.2: client_id; OIDC-style providers put the client in azp instead.
    clientId: (payload.client_id ?? payload.azp) as string | undefined,
    scopes: parseScopes(payload),
    jti: payload.jti as string | undefined,
    tokenDigest,
    // Epoch milliseconds, comparable with deps.now().
    expiresAt: (payload.exp as number) * 1000,
    claims: deepFreeze(payload),
  })
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v)
  }
  return value
}
