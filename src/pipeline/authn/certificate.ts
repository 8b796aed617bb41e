import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../../errors/gateway-error.js'
import { peerCertificateOf, type PeerCertificate, type PeerCertificateDetail } from '../../http/peer-certificate.js'
import type { Identity } from '../stage.js'

// Client-certificate authentication (`auth: certificate` routes, docs/authn.md). The TLS stack has
// verified the chain against the listener's clientCa; what is left here is to say who the
// certificate names, once per connection, and to refuse what it did not verify.

/** The issuerId of every certificate identity. Issuer ids of the config cannot start with "#". */
export const CERTIFICATE_ISSUER_ID = '#certificate'

/** Why a request on an `auth: certificate` route has no certificate identity. */
export type CertificateRefusal = 'certificate_missing' | 'certificate_unverified' | 'certificate_revoked' | 'certificate_expired'

/**
 * The names a certificate carries, as the route allowlists are compiled: `uri:<URI SAN>`,
 * `dns:<DNS SAN, lower case>`, and `cn:<common name>` when the subject has exactly one CN.
 */
export function certificateNames(detail: PeerCertificateDetail): string[] {
  const names: string[] = []
  for (const [type, value] of splitAltNames(detail.subjectAltName ?? '')) {
    if (type === 'URI') names.push(`uri:${value}`)
    else if (type === 'DNS') names.push(`dns:${value.toLowerCase()}`)
  }
  const cn = detail.subject?.CN
  if (typeof cn === 'string') names.push(`cn:${cn}`)
  return names
}

/** A route's `certificates` entry as one of the names certificateNames makes. */
export function admittedName(match: { uri?: string; dns?: string; commonName?: string }): string {
  if (match.uri !== undefined) return `uri:${match.uri}`
  if (match.dns !== undefined) return `dns:${match.dns.toLowerCase()}`
  return `cn:${match.commonName!}`
}

/**
 * node's subjectAltName text as [type, value] pairs. node separates entries with ", " and writes a
 * value that holds a comma, a quote, a backslash or a control character as a JSON string
 * (crypto_common.cc, since the fix for CVE-2021-44532), so an unquoted value never holds ", ".
 * Written here because node exports no parser for it. Text that does not follow that grammar gives
 * no names at all (fail closed: a name is never guessed from a malformed list).
 */
export function splitAltNames(text: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  let i = 0
  while (i < text.length) {
    const colon = text.indexOf(':', i)
    if (colon < 0) return []
    const type = text.slice(i, colon)
    let j = colon + 1
    let value: string
    if (text[j] === '"') {
      let end = j + 1
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1
      if (end >= text.length) return []
      try {
        value = JSON.parse(text.slice(j, end + 1)) as string
      } catch {
        return []
      }
      j = end + 1
    } else {
      const comma = text.indexOf(', ', j)
      j = comma < 0 ? text.length : comma
      value = text.slice(colon + 1, j)
      // node quotes every value that holds a comma.
      if (value.includes(',')) return []
    }
    out.push([type, value])
    if (j === text.length) break
    if (!text.startsWith(', ', j)) return []
    i = j + 2
  }
  return out
}

/** RFC 4514-style text of a subject or issuer: "CN=Example CA, O=Example" (node's attribute order). */
function distinguishedName(attributes: PeerCertificateDetail['issuer']): string {
  if (attributes === undefined) return ''
  const parts: string[] = []
  for (const [key, value] of Object.entries(attributes)) {
    for (const v of Array.isArray(value) ? value : [value]) parts.push(`${key}=${v}`)
  }
  return parts.join(', ')
}

/** An identity per certificate (so per connection): the identity-header writer memoizes by identity. */
const identities = new WeakMap<PeerCertificate, Identity>()

function identityOf(cert: PeerCertificate): Identity {
  let identity = identities.get(cert)
  if (identity === undefined) {
    const names = certificateNames(cert.detail)
    // Who the certificate names, for headers, logs and limits: its first URI SAN (a SPIFFE ID,
    // say), else its first DNS SAN, else its common name.
    const first = names.find((n) => n.startsWith('uri:')) ?? names.find((n) => n.startsWith('dns:')) ?? names.find((n) => n.startsWith('cn:'))
    const validTo = Date.parse(cert.detail.validTo)
    identity = Object.freeze({
      issuer: distinguishedName(cert.detail.issuer),
      issuerId: CERTIFICATE_ISSUER_ID,
      subject: first?.slice(first.indexOf(':') + 1),
      clientId: undefined,
      scopes: new Set<string>(),
      jti: undefined,
      tokenDigest: undefined,
      // An unreadable notAfter counts as already past: fail closed.
      expiresAt: Number.isNaN(validTo) ? 0 : validTo,
      claims: Object.freeze({}),
      certificate: cert.thumbprint,
      certificateNames: Object.freeze(names),
    } satisfies Identity)
    identities.set(cert, identity)
  }
  return identity
}

/** Why a connection's certificate gives no identity, or undefined when it gives one. */
function refusalOf(cert: PeerCertificate | undefined, nowMs: number): CertificateRefusal | undefined {
  if (cert === undefined) return 'certificate_missing'
  if (!cert.verified) return cert.verifyError === 'CERT_REVOKED' ? 'certificate_revoked' : 'certificate_unverified'
  return nowMs >= identityOf(cert).expiresAt ? 'certificate_expired' : undefined
}

/** Whether certificateIdentity would give the request an identity (and not throw). */
export function hasCertificateIdentity(req: IncomingMessage, nowMs: number): boolean {
  return refusalOf(peerCertificateOf(req), nowMs) === undefined
}

/**
 * The identity of the request connection's client certificate, verified against a listener's
 * clientCa and still within its validity (a keep-alive connection can outlive the certificate
 * the handshake accepted). Throws ERR_AUTHN_CERTIFICATE_REQUIRED otherwise.
 */
export function certificateIdentity(req: IncomingMessage, nowMs: number): Identity {
  const cert = peerCertificateOf(req)
  const refusal = refusalOf(cert, nowMs)
  if (refusal !== undefined) {
    throw new GatewayError('ERR_AUTHN_CERTIFICATE_REQUIRED', {
      reason: refusal,
      detail: 'This route admits only clients with a certificate the gateway verifies.',
    })
  }
  return identityOf(cert!)
}
