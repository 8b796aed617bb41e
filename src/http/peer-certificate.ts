import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { certificateThumbprint } from '@portcullis/verify/rules'

/** What the gateway reads from a connection's client certificate. */
export interface PeerCertificate {
  /** RFC 8705 §3.1 `x5t#S256` (base64url SHA-256 of the DER): what a bound token names. */
  readonly thumbprint: string
  /**
   * The RFC 9440 Client-Cert value (the DER as a structured-field byte sequence, `:base64:`,
   * RFC 8941 §3.3.5), only when the TLS stack verified the certificate against the listener's
   * clientCa (`authorized`). With `clientCertificates: request` and no clientCa a client may
   * present any certificate it made itself, and an upstream reading Client-Cert takes it as
   * vouched for by the gateway.
   */
  readonly clientCertField: string | undefined
}

const kPeer = Symbol('portcullis.peerCertificate')
type MemoSocket = TLSSocket & { [kPeer]?: PeerCertificate | null }

/**
 * The client certificate of the request's connection, or undefined when there is none (plain
 * HTTP, or a TLS client that sent none). Read once per connection: getPeerCertificate builds a
 * large object each call, and the certificate cannot change (renegotiation is disabled on the
 * gateway's TLS listeners).
 */
export function peerCertificateOf(req: IncomingMessage): PeerCertificate | undefined {
  const socket = req.socket as MemoSocket
  if (typeof socket.getPeerCertificate !== 'function') return undefined
  let memo = socket[kPeer]
  if (memo === undefined) {
    const raw = socket.getPeerCertificate()?.raw
    memo =
      raw !== undefined && raw.length > 0
        ? { thumbprint: certificateThumbprint(raw), clientCertField: socket.authorized === true ? `:${raw.toString('base64')}:` : undefined }
        : null
    socket[kPeer] = memo
  }
  return memo ?? undefined
}
