import { hash } from 'node:crypto'
import type { Payload } from './jwt-parse.js'
import { invalidToken } from './reject.js'

/**
 * Sender-constrained tokens (RFC 7800 `cnf`). A token bound to a certificate or key is usable only
 * with proof of it: accepting it as a plain bearer token would hand whoever stole it what the
 * binding was meant to deny. The one binding a server can check from the request alone is RFC
 * 8705's certificate thumbprint (`x5t#S256`) against the client certificate of the TLS
 * connection; any other confirmation (DPoP's `jkt`, RFC 9449; `jwk`; `kid`) is refused, never
 * ignored. The gateway and the verifier share these rules.
 */

/** Why a token's binding fails, as `reason` of the ERR_AUTHN_INVALID_TOKEN it raises. */
export type BindingRefusal = 'certificate_missing' | 'certificate_mismatch'

/**
 * The certificate thumbprint (base64url SHA-256 of the DER certificate) a token is bound to, or
 * undefined for a token without `cnf`. Throws `unsupported_confirmation` for any other `cnf`: a
 * binding that cannot be checked here.
 */
export function boundCertificate(payload: Payload): string | undefined {
  const cnf = payload.cnf
  if (cnf === undefined) return undefined
  const x5t = cnf !== null && typeof cnf === 'object' && !Array.isArray(cnf) ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined
  if (typeof x5t === 'string' && x5t.length > 0) return x5t
  throw invalidToken('unsupported_confirmation')
}

/** RFC 8705 §3.1 `x5t#S256` of a DER certificate: base64url SHA-256, unpadded. */
export function certificateThumbprint(der: Uint8Array): string {
  return hash('sha256', der, 'base64url')
}

/**
 * Whether the connection's certificate (its thumbprint, or undefined when it presented none) is
 * the one `bound` names: undefined when it is, or when the token is not bound at all.
 */
export function bindingRefusal(bound: string | undefined, presented: string | undefined): BindingRefusal | undefined {
  if (bound === undefined) return undefined
  if (presented === undefined) return 'certificate_missing'
  return presented === bound ? undefined : 'certificate_mismatch'
}
