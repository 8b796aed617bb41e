import { randomUUID } from 'node:crypto'
import type { Identity } from '../pipeline/stage.js'

export interface ClaimsInput {
  /** internalTokens.issuer: the gateway. */
  readonly issuer: string
  readonly audience: string
  readonly identity: Identity
  readonly ttlSec: number
  readonly nowMs: number
  /** The signing key leaves the JWKS then (epoch ms; Infinity for the current key). */
  readonly keyRetireAt: number
  /** Set only when internalTokens.requestIdClaim is on. */
  readonly requestId?: string
}

export interface InternalClaims {
  readonly json: string
  /** exp, in epoch ms. */
  readonly expiresAt: number
  readonly issuedAt: number
}

/**
 * The claims of an internal token (docs/internal-tokens.md):
 *
 * - `iss` the gateway, `aud` the upstream's audience only (RFC 8725 §3.9: a token for one service
 *   is refused by the others), `iat`, `exp`, a fresh `jti` (RFC 9068 §2.2);
 * - `sub`, `client_id` and `scope` (space-delimited, RFC 9068 §2.2.3) of the caller, as verified;
 * - `orig_iss` and `orig_jti`: the caller token's issuer (the namespace `sub` belongs to) and id,
 *   so a service can log and correlate the original token without ever seeing it;
 * - `act` (RFC 8693 §4.1): the gateway is the actor, the caller stays the subject. An `act` the
 *   caller token already had becomes the nested prior actor, keeping the delegation chain.
 *
 * `exp` is the earliest of iat + ttl, the caller token's exp (the gateway never extends a caller's
 * access) and the signing key's retirement (a token never outlives the key that verifies it).
 */
export function buildClaims(input: ClaimsInput): InternalClaims {
  const { identity } = input
  const iat = Math.floor(input.nowMs / 1000)
  const exp = Math.min(iat + input.ttlSec, Math.floor(identity.expiresAt / 1000), Math.floor(input.keyRetireAt / 1000))
  const prior = identity.claims.act
  const act: Record<string, unknown> = { sub: input.issuer }
  if (prior !== null && typeof prior === 'object' && !Array.isArray(prior)) act.act = prior
  const claims: Record<string, unknown> = {
    iss: input.issuer,
    sub: identity.subject,
    aud: input.audience,
    iat,
    exp,
    jti: randomUUID(),
    client_id: identity.clientId,
    scope: identity.scopes.size ? [...identity.scopes].join(' ') : undefined,
    orig_iss: identity.issuer,
    orig_jti: identity.jti,
    act,
    req_id: input.requestId,
  }
  // JSON.stringify leaves out undefined members: a claim the caller token lacked is absent, not null.
  return { json: JSON.stringify(claims), expiresAt: exp * 1000, issuedAt: iat * 1000 }
}
