import * as rules from '@portcullis/verify/rules'
import { normalizeTyp, type Header, type Payload, type TokenPolicy } from '@portcullis/verify/rules'
import { deepFreeze } from '../../util/deep-freeze.js'
import type { Identity } from '../stage.js'
import { asGatewayError, invalidToken } from './reject.js'

/**
 * The JOSE header and JWT claim rules are @portcullis/verify's (its `rules` entry), so the edge
 * and the services behind it refuse a token for the same reason. Both signature paths (node:crypto
 * and jose) call these functions, so a token is judged by identical rules whichever path verified
 * it. Here they only throw GatewayError instead of VerifyError (same codes and reasons).
 */

// TokenPolicy: what one issuer accepts, compiled once from config (issuer.ts); empty audiences = any.
export type { TokenPolicy, Payload }
export { normalizeTyp }

/**
 * Checks that do not depend on the issuer (alg "none" in any casing, embedded or remote keys,
 * crit, kid and typ types); run before issuer selection so that the most dangerous forgeries are
 * refused whatever `iss` they claim.
 */
export function checkHeaderShape(header: Header): void {
  try {
    rules.checkHeaderShape(header)
  } catch (err) {
    throw asGatewayError(err)
  }
}

/** Issuer-specific header checks: the algorithm allowlist and explicit typing. */
export function checkHeaderPolicy(header: Header, policy: TokenPolicy): void {
  try {
    rules.checkHeaderPolicy(header, policy)
  } catch (err) {
    throw asGatewayError(err)
  }
}

/**
 * RFC 7519 §4.1 and RFC 9068 §4 claim checks, at `nowMs` (injected clock).
 * Throws ERR_AUTHN_EXPIRED for an expired token and ERR_AUTHN_INVALID_TOKEN otherwise.
 */
export function checkClaims(payload: Payload, policy: TokenPolicy, nowMs: number): void {
  // RFC 7519 §4.1.1: exact string comparison. Unreachable after issuer selection by exact iss
  // (index.ts), kept so the function is whole on its own.
  if (payload.iss !== policy.issuer) throw invalidToken('wrong_issuer')
  try {
    rules.checkAccessTokenClaims(payload, policy, nowMs)
  } catch (err) {
    throw asGatewayError(err)
  }
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
