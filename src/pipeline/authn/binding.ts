import type { IncomingMessage } from 'node:http'
import * as rules from '@portcullis/verify/rules'
import type { BindingRefusal } from '@portcullis/verify/rules'
import { peerCertificateOf } from '../../http/peer-certificate.js'
import type { Payload } from './claims.js'
import { asGatewayError, invalidToken } from './reject.js'

// Sender-constrained tokens (RFC 7800 `cnf`): the rules (which `cnf` is checkable, what a refusal
// is called) are `@portcullis/verify`'s, shared with the services' verifier; here they meet the
// certificate of the request's connection.

/** The certificate thumbprint a token is bound to, or undefined for a token without `cnf`. Throws for a binding the gateway cannot check. */
export function boundCertificate(payload: Payload): string | undefined {
  try {
    return rules.boundCertificate(payload)
  } catch (err) {
    throw asGatewayError(err)
  }
}

/** The thumbprint of the request connection's client certificate, or undefined when it presented none. */
export function clientCertificateThumbprint(req: IncomingMessage): string | undefined {
  return peerCertificateOf(req)?.thumbprint
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
