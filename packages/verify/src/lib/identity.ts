import type { Actor, Identity } from '../types.js'
import { scopesOf } from './check-claims.js'
import type { Payload } from './jwt-parse.js'

/**
 * A Set that cannot be changed after construction. Identity objects are shared by every request
 * that presents the same token (the verified-token cache), so a handler that added a scope to
 * its identity would grant it to the next request too; this refuses instead.
 */
class ReadonlyScopeSet extends Set<string> {
  constructor(values: Iterable<string>) {
    super()
    for (const v of values) Set.prototype.add.call(this, v)
    Object.freeze(this)
  }
  override add(): this {
    throw new TypeError('Identity.scopes is read-only')
  }
  override delete(): boolean {
    throw new TypeError('Identity.scopes is read-only')
  }
  override clear(): void {
    throw new TypeError('Identity.scopes is read-only')
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v)
  }
  return value
}

/** The Identity of a verified payload. */
export function buildIdentity(payload: Payload, tokenDigest: string, boundCertificate: string | undefined): Identity {
  const claims = deepFreeze(payload)
  const aud = claims.aud
  return Object.freeze({
    subject: claims.sub as string | undefined,
    // RFC 9068 §2.2: client_id; OIDC-style providers put the client in azp instead.
    clientId: (claims.client_id ?? claims.azp) as string | undefined,
    // The same rule checkClaims applied, so it cannot throw here.
    scopes: new ReadonlyScopeSet(scopesOf(claims)),
    issuer: claims.iss as string,
    audience: Object.freeze(typeof aud === 'string' ? [aud] : [...(aud as string[])]),
    jti: claims.jti as string | undefined,
    expiresAt: (claims.exp as number) * 1000,
    act: claims.act as Actor | undefined,
    boundCertificate,
    tokenDigest,
    claims,
  })
}
