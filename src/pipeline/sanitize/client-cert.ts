import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'

const kField = Symbol('portcullis.clientCertField')
type MemoSocket = TLSSocket & { [kField]?: string | null }

/**
 * The RFC 9440 Client-Cert value for the request's connection: its client certificate (DER) as a
 * structured-field byte sequence (`:base64:`, RFC 8941 §3.3.5), or undefined. Only a certificate
 * the TLS stack verified against the listener's clientCa (`authorized`) is sent: with
 * `clientCertificates: request` and no clientCa, a client may present any certificate it made
 * itself, and an upstream reading Client-Cert takes it as vouched for by the gateway. Made once
 * per connection (renegotiation is disabled on the gateway's TLS listeners, so the certificate
 * cannot change).
 */
export function verifiedClientCertificateField(req: IncomingMessage): string | undefined {
  const socket = req.socket as MemoSocket
  if (socket.encrypted !== true) return undefined
  let memo = socket[kField]
  if (memo === undefined) {
    const raw = socket.authorized === true ? socket.getPeerCertificate()?.raw : undefined
    memo = raw !== undefined && raw.length > 0 ? `:${raw.toString('base64')}:` : null
    socket[kField] = memo
  }
  return memo ?? undefined
}
