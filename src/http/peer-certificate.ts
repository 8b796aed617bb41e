import type { IncomingMessage } from 'node:http'
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls'
import { certificateThumbprint } from '@portcullis/verify/rules'

/** What the gateway reads from a connection's client certificate. */
export interface PeerCertificate {
  /** RFC 8705 §3.1 `x5t#S256` (base64url SHA-256 of the DER): what a bound token names. */
  readonly thumbprint: string
  /**
   * Whether the TLS stack verified the certificate against the listener's clientCa
   * (`socket.authorized`). With `clientCertificates: request` a client may present any certificate
   * it made itself: only a verified one says anything about who the client is.
   */
  readonly verified: boolean
  /** Why it is not verified: OpenSSL's verification error as node names it (`CERT_REVOKED`, `UNABLE_TO_GET_ISSUER_CERT`, …). */
  readonly verifyError: string | undefined
  /**
   * The RFC 9440 Client-Cert value (the DER as a structured-field byte sequence, `:base64:`,
   * RFC 8941 §3.3.5), only for a verified certificate: an upstream reading Client-Cert takes it
   * as vouched for by the gateway.
   */
  readonly clientCertField: string | undefined
  /**
   * The RFC 9440 Client-Cert-Chain value for a verified certificate: the certificates between it
   * and the trust anchor, nearest first (a structured-field list of byte sequences), or undefined
   * when it was issued by the anchor itself. The anchor is left out: it is the CA the listener
   * trusts, which a service relying on the gateway knows already.
   */
  readonly clientCertChainField: string | undefined
  /** The parts of the certificate a certificate identity is made of (authn/certificate.ts). */
  readonly detail: PeerCertificateDetail
}

/** Fields of node's parsed certificate, kept from the one getPeerCertificate call per connection. */
export interface PeerCertificateDetail {
  /** Subject and issuer attributes as node parses them (a repeated attribute is an array). */
  readonly subject: Readonly<Record<string, string | string[]>> | undefined
  readonly issuer: Readonly<Record<string, string | string[]>> | undefined
  /** node's subjectAltName text: "DNS:a, URI:b", unsafe values JSON-quoted. */
  readonly subjectAltName: string | undefined
  /** notAfter as node prints it ("Nov 30 12:00:00 2026 GMT"). */
  readonly validTo: string
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
    const verified = socket.authorized === true
    const error = socket.authorizationError as unknown
    memo = read(socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined, verified, verified ? undefined : errorCode(error))
    socket[kPeer] = memo
  }
  return memo ?? undefined
}

/** node gives authorizationError as an Error with a code, or as the code alone, depending on where verification failed. */
function errorCode(error: unknown): string | undefined {
  if (typeof error === 'string') return error
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

function read(cert: DetailedPeerCertificate | undefined, verified: boolean, verifyError: string | undefined): PeerCertificate | null {
  const raw = cert?.raw
  if (cert === undefined || raw === undefined || raw.length === 0) return null
  return {
    thumbprint: certificateThumbprint(raw),
    verified,
    verifyError,
    clientCertField: verified ? `:${raw.toString('base64')}:` : undefined,
    clientCertChainField: verified ? chainField(cert) : undefined,
    detail: {
      subject: cert.subject as PeerCertificateDetail['subject'],
      issuer: cert.issuer as PeerCertificateDetail['issuer'],
      subjectAltName: cert.subjectaltname,
      validTo: cert.valid_to,
    },
  }
}

/** A verified chain holds a handful of certificates; a longer one is cut here, never looped over. */
const MAX_CHAIN = 10

/**
 * The issuers node verified the certificate with (its `issuerCertificate` links: the intermediates
 * the client sent, then the CA from clientCa), without the self-issued anchor that ends them.
 */
function chainField(cert: DetailedPeerCertificate): string | undefined {
  const items: string[] = []
  let current = cert
  for (let i = 0; i < MAX_CHAIN && !selfIssued(current); i++) {
    const issuer = current.issuerCertificate as DetailedPeerCertificate | undefined
    if (issuer === undefined || issuer.raw === undefined || selfIssued(issuer)) break
    items.push(`:${issuer.raw.toString('base64')}:`)
    current = issuer
  }
  return items.length === 0 ? undefined : items.join(', ')
}

/** node links a self-issued certificate (a root) to itself. */
function selfIssued(cert: DetailedPeerCertificate): boolean {
  const issuer = cert.issuerCertificate as DetailedPeerCertificate | undefined
  return issuer === cert || (issuer?.raw !== undefined && issuer.raw.equals(cert.raw))
}
