/** A socket as far as client certificates go: node's TLSSocket has this method, a plain socket does not. */
interface CertificateSocket {
  getPeerCertificate(detailed?: boolean): { readonly raw?: Uint8Array } | null
}

/** Per connection: its certificate cannot change, and getPeerCertificate builds a large object each call. */
const seen = new WeakMap<object, Uint8Array | null>()

/**
 * The DER client certificate of a request's connection, or null when there is none: a plain TCP
 * socket, or a TLS client that sent no certificate (node then answers an empty object). Whether
 * the certificate chains to a trusted CA is the TLS server's `requestCert`/`ca` business; a bound
 * token only needs the certificate it names (RFC 8705 §2.2 allows self-signed ones).
 */
export function peerCertificateOf(socket: object | null | undefined): Uint8Array | null {
  if (socket == null || typeof (socket as Partial<CertificateSocket>).getPeerCertificate !== 'function') return null
  let der = seen.get(socket)
  if (der === undefined) {
    const raw = (socket as CertificateSocket).getPeerCertificate()?.raw
    der = raw !== undefined && raw.length > 0 ? raw : null
    seen.set(socket, der)
  }
  return der
}
