import { VerifyError } from '../verify-error.js'
import type { Payload } from './jwt-parse.js'
import { MAX_ACTOR_DEPTH } from './limits.js'
import type { TokenPolicy } from './policy.js'
import { invalidToken } from './reject.js'

const isNumericDate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string'
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), printable ASCII but space, '"' and '\'.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/**
 * RFC 7519 §4.1 and RFC 9068 §4 claim checks at `nowMs` (an injected clock), in the gateway's
 * order and with its reason names. Throws ERR_AUTHN_EXPIRED for an expired token and
 * ERR_AUTHN_INVALID_TOKEN otherwise.
 */
export function checkClaims(payload: Payload, policy: TokenPolicy, nowMs: number): void {
  // RFC 7519 §4.1.1: exact string comparison, no normalization of trailing slashes. (verify()
  // already refused another iss before the key lookup; this keeps the function whole on its own.)
  if (payload.iss !== policy.issuer) throw invalidToken('unknown_issuer')
  checkAccessTokenClaims(payload, policy, nowMs)
  if (payload.act !== undefined && !isActor(payload.act, 1)) throw invalidToken('claim_type')
}

/**
 * Every claim rule but the issuer's (whose reason name differs between the gateway and a verifier)
 * and `act` (which only a verifier exposes): ID-token markers, exp/nbf/iat with the skew, maximum
 * lifetime and age, audience, and the types of the claims an identity is built from. The gateway
 * calls this with its own policy (see rules.ts).
 */
export function checkAccessTokenClaims(payload: Payload, policy: TokenPolicy, nowMs: number): void {
  const now = nowMs / 1000
  const skew = policy.clockToleranceSec
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
  // RFC 7519 §4.1.5: not before nbf (minus the allowed skew).
  if (nbf !== undefined && nbf > now + skew) throw invalidToken('not_yet_valid')
  if (iat !== undefined && iat > now + skew) throw invalidToken('iat_in_future')
  // RFC 7519 §4.1.4: the token MUST NOT be accepted on or after exp (plus the allowed skew).
  if (now - skew >= exp) throw new VerifyError('ERR_AUTHN_EXPIRED', { reason: 'expired' })
  // A token valid for longer than policy allows is more likely minted by a compromised signer or
  // stolen-and-replayed than legitimate; refuse it (RFC 8725 §3.10 spirit).
  if (exp - (iat ?? now) > policy.maxTokenLifetimeSec) throw invalidToken('lifetime')
  if (policy.maxTokenAgeSec !== undefined) {
    // jose's maxTokenAge: with an age limit, iat is required and bounds how old the token may be.
    if (iat === undefined) throw invalidToken('missing_iat')
    if (now - iat - skew > policy.maxTokenAgeSec) throw invalidToken('too_old')
  }
  checkAudience(payload.aud, policy.audiences)
  checkClaimTypes(payload)
}

/** RFC 7519 §4.1.3: aud is a string or an array of strings; one of them must be ours. */
function checkAudience(aud: unknown, accepted: readonly string[]): void {
  if (accepted.length === 0) {
    // Only a gateway issuer configured without audiences (its config lint warns): any audience,
    // but still of the right type.
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

/** Claims the Identity exposes must have the type it promises, or the token is refused. */
function checkClaimTypes(p: Payload): void {
  if (!optionalString(p.sub) || !optionalString(p.client_id) || !optionalString(p.azp) || !optionalString(p.jti)) {
    throw invalidToken('claim_type')
  }
  scopesOf(p)
}

/**
 * The scopes a token grants: `scope` (space-delimited, RFC 9068 §2.2.3 / RFC 8693 §4.2) when
 * present, else `scp`: an array (several IdPs) or a space-delimited string like `scope` (Microsoft
 * Entra ID access tokens). Every scope must be an RFC 6749 §3.3 scope-token, in both claims, or the
 * token is refused (`claim_type`): scopes leave the gateway joined with spaces (identity header,
 * internal tokens), so an entry such as "x orders:admin" would reach services as scopes that were
 * never judged.
 */
export function scopesOf(payload: Payload): string[] {
  const scope = scopeList(payload.scope, false)
  const scp = scopeList(payload.scp, true)
  return scope ?? scp ?? []
}

function scopeList(claim: unknown, arrayAllowed: boolean): string[] | undefined {
  if (claim === undefined) return undefined
  let list: unknown[]
  // Runs of spaces and edge spaces are tolerated; any other separator leaves an invalid token.
  if (typeof claim === 'string') list = claim.split(' ').filter((s) => s !== '')
  else if (arrayAllowed && Array.isArray(claim)) list = claim
  else throw invalidToken('claim_type')
  for (const s of list) if (typeof s !== 'string' || !SCOPE_TOKEN.test(s)) throw invalidToken('claim_type')
  return list as string[]
}

/**
 * RFC 8693 §4.1: `act` is a JSON object whose claims identify the acting party (`sub`, maybe
 * `iss`), and may itself carry an `act` for the previous actor in a delegation chain, at most
 * MAX_ACTOR_DEPTH deep. `depth` is the level `v` sits at (1 for a token's own `act`): the gateway
 * nests a caller's `act` one level down in the token it mints, and checks it at 2.
 */
export function isActor(v: unknown, depth: number): boolean {
  if (!isObject(v) || depth > MAX_ACTOR_DEPTH) return false
  if (!optionalString(v.sub) || !optionalString(v.iss) || !optionalString(v.client_id)) return false
  return v.act === undefined || isActor(v.act, depth + 1)
}
