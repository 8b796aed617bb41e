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
 * The token's scopes by @portcullis/verify's rule (`scope`, else `scp` as an array or a
 * space-delimited string; every one an RFC 6749 §3.3 scope-token), so the edge and the services
 * behind it see the same set. checkClaims has already
 * refused a token this would throw for.
 */
export function parseScopes(payload: Payload): Set<string> {
  try {
    return new Set(rules.scopesOf(payload))
  } catch (err) {
    throw asGatewayError(err)
  }
}

const stringOrUndefined = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)

/**
 * Who a token names: its subject, its client and its id, each where it is a string. The client is
 * `client_id` (RFC 9068 §2.2), else `azp`, where OIDC-style providers put it. Read from a verified
 * token whose claims checkClaims accepted (buildIdentity) or refused (the denial event's names).
 */
export function namedBy(payload: Payload): { subject?: string; clientId?: string; jti?: string } {
  return {
    subject: stringOrUndefined(payload.sub),
    clientId: stringOrUndefined(payload.client_id) ?? stringOrUndefined(payload.azp),
    jti: stringOrUndefined(payload.jti),
  }
}

/** The Identity later stages read. Frozen: the same object is shared by cached requests. */
export function buildIdentity(payload: Payload, issuerId: string, tokenDigest: string, boundCertificate?: string): Identity {
  const { subject, clientId, jti } = namedBy(payload)
  return Object.freeze({
    boundCertificate,
    issuer: payload.iss as string,
    issuerId,
    subject,
    clientId,
    scopes: parseScopes(payload),
    jti,
    tokenDigest,
    // Epoch milliseconds, comparable with deps.now().
    expiresAt: (payload.exp as number) * 1000,
    claims: deepFreeze(payload),
  })
}
