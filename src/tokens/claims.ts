import { randomUUID } from 'node:crypto'
import { isActor } from '@portcullis/verify/rules'
import { GatewayError } from '../errors/gateway-error.js'
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
 *   caller token already had becomes the nested prior actor, keeping the delegation chain; one
 *   that @portcullis/verify would refuse (not an actor, or too deep with the gateway added) makes
 *   the request fail with ERR_AUTHN_INVALID_TOKEN (reason claim_type) instead.
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
  if (prior !== undefined) {
    // The edge does not judge `act` (only a verifier exposes it), but the gateway signs it here: a
    // value that is no actor, or a chain too deep once the gateway is added, is refused as the
    // service would refuse it, rather than signed (or silently dropped, hiding who acted). At
    // depth 2: the gateway's own actor is level 1 of the minted token.
    if (!isActor(prior, 2)) throw new GatewayError('ERR_AUTHN_INVALID_TOKEN', { reason: 'claim_type' })
    act.act = prior
  }
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
