import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import * as rules from '@portcullis/verify/rules'
import type { BindingRefusal } from '@portcullis/verify/rules'
import type { Payload } from './claims.js'
import { asGatewayError, invalidToken } from './reject.js'

/**
 * Sender-constrained tokens (RFC 7800 `cnf`): the rules (which `cnf` is checkable, what a refusal
 * is called) are `@portcullis/verify`'s, shared with the services' verifier; here is how the
 * gateway finds the certificate of a request's connection.
 */
/** The certificate thumbprint a token is bound to, or undefined for a token without `cnf`. Throws for a binding the gateway cannot check. */
export function boundCertificate(payload: Payload): string | undefined {
  try {
    return rules.boundCertificate(payload)
  } catch (err) {
    throw asGatewayError(err)
  }
}

const kThumbprint = Symbol('portcullis.certificateThumbprint')
type MemoSocket = TLSSocket & { [kThumbprint]?: string | null }

/**
 * base64url SHA-256 of the DER client certificate of the request's connection (RFC 8705 §3.1), or
 * undefined when there is none (plain HTTP, or a TLS client that sent none). Computed once per
 * connection: its certificate cannot change (renegotiation is disabled on the gateway's TLS listeners).
 */
export function clientCertificateThumbprint(req: IncomingMessage): string | undefined {
  const socket = req.socket as MemoSocket
  let memo = socket[kThumbprint]
  if (memo === undefined) {
    const raw = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate()?.raw : undefined
    memo = raw !== undefined && raw.length > 0 ? rules.certificateThumbprint(raw) : null
    socket[kThumbprint] = memo
  }
  return memo ?? undefined
}

/** Why the request's connection does not hold the certificate a token is bound to, or undefined when it does (or the token is unbound). */
export function bindingRefusal(bound: string | undefined, req: IncomingMessage): BindingRefusal | undefined {
  // The thumbprint is looked up only for a bound token.
  return bound === undefined ? undefined : rules.bindingRefusal(bound, clientCertificateThumbprint(req))
}

/** Throws unless the request's connection presented the certificate the token is bound to. */
export function checkBinding(bound: string | undefined, req: IncomingMessage): void {
  const refusal = bindingRefusal(bound, req)
  if (refusal !== undefined) throw invalidToken(refusal)
}
