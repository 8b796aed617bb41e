import { hash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Payload } from './claims.js'
import { invalidToken } from './reject.js'

/**
 * Sender-constrained tokens (RFC 7800 `cnf`). A token bound to a key or certificate is usable only
 * with proof of it: accepting it as a plain bearer token would hand whoever stole it what the
 * binding was meant to deny. The gateway checks the one binding it can see, RFC 8705's
 * certificate thumbprint (`x5t#S256`) against the client certificate of the TLS connection; any
 * other confirmation (DPoP's `jkt`, RFC 9449; `jwk`, `kid`) is refused, never ignored.
 */

/** The certificate thumbprint a token is bound to, or undefined for a token without `cnf`. Throws for a binding the gateway cannot check. */
export function boundCertificate(payload: Payload): string | undefined {
  const cnf = payload.cnf
  if (cnf === undefined) return undefined
  const x5t = cnf !== null && typeof cnf === 'object' && !Array.isArray(cnf) ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined
  if (typeof x5t === 'string' && x5t.length > 0) return x5t
  throw invalidToken('unsupported_confirmation')
}

const kThumbprint = Symbol('portcullis.certificateThumbprint')
type MemoSocket = TLSSocket & { [kThumbprint]?: string | null }

/**
 * base64url SHA-256 of the DER client certificate of the request's connection (RFC 8705 §3.1), or
 * undefined when there is none (plain HTTP, or a TLS client that sent none). Computed once per
 * connection: its certificate cannot change.
 */
export function clientCertificateThumbprint(req: IncomingMessage): string | undefined {
  const socket = req.socket as MemoSocket
  let memo = socket[kThumbprint]
  if (memo === undefined) {
    const raw = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate()?.raw : undefined
    memo = raw !== undefined && raw.length > 0 ? hash('sha256', raw, 'base64url') : null
    socket[kThumbprint] = memo
  }
  return memo ?? undefined
}

/** Why the request's connection does not hold the certificate a token is bound to, or undefined when it does (or the token is unbound). */
export function bindingRefusal(bound: string | undefined, req: IncomingMessage): 'certificate_missing' | 'certificate_mismatch' | undefined {
  if (bound === undefined) return undefined
  const presented = clientCertificateThumbprint(req)
  if (presented === undefined) return 'certificate_missing'
  return presented === bound ? undefined : 'certificate_mismatch'
}

/** Throws unless the request's connection presented the certificate the token is bound to. */
export function checkBinding(bound: string | undefined, req: IncomingMessage): void {
  const refusal = bindingRefusal(bound, req)
  if (refusal !== undefined) throw invalidToken(refusal)
}
