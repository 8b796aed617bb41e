import { requireScopes } from '../require-scopes.js'
import type { Identity, Verifier } from '../types.js'
import { isVerifyError, type VerifyError } from '../verify-error.js'
import { authorizationOf, type RequestLike } from './bearer.js'
import { peerCertificateOf } from './peer-certificate.js'
import { withRealm } from './reject.js'

export type { RequestLike } from './bearer.js'

/** Request-level rules, then verify(), then the scopes. A VerifyError comes out under the verifier's realm. */
export async function authenticateRequest(verifier: Verifier, req: RequestLike, scopes: readonly string[] | undefined): Promise<Identity> {
  try {
    // A getter: the certificate is looked up only for a token bound to one.
    const identity = await verifier.verify(authorizationOf(req), {
      get clientCertificate() {
        return peerCertificateOf(req.socket)
      },
    })
    if (scopes !== undefined && scopes.length > 0) requireScopes(identity, ...scopes)
    return identity
  } catch (err) {
    throw isVerifyError(err) ? withRealm(err, verifier.realm) : err
  }
}

/** A response as plain data, for adapters to write with their framework's API. */
export interface ProblemResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** VerifyError → RFC 9457 problem+json with its RFC 6750 challenge, under `realm`. */
export function problemResponse(err: VerifyError, realm: string): ProblemResponse {
  return { status: err.status, headers: err.headers(realm), body: JSON.stringify(err.toProblem()) }
}

/** Scopes option, checked when the adapter is built rather than per request. */
export function scopesOption(scopes: readonly string[] | undefined): readonly string[] | undefined {
  if (scopes === undefined) return undefined
  if (!Array.isArray(scopes) || scopes.some((s) => typeof s !== 'string' || s === '' || s.includes(' '))) {
    throw new TypeError('@portcullis/verify: "scopes" must be an array of scope tokens (no spaces)')
  }
  return Object.freeze([...scopes])
}

