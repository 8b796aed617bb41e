import type { IdentityConfig } from '../../config/schema.js'
import type { Identity } from '../stage.js'

export type IdentityHeaderWriter = (headers: Record<string, string | string[]>, identity: Identity) => void

// A value is sent as is when it is visible ASCII with inner spaces only, and no "%"; anything else
// (control characters, non-ASCII, edge whitespace, a "%") is percent-encoded UTF-8, so it can never
// split or smuggle a header (RFC 9110 §5.5: field values are visible characters, SP and HTAB), and
// percent-decoding a value always gives back what the token said: a raw value holds no "%", so
// "caf%C3%A9" in a token and "café" cannot arrive as the same text.
const SAFE = /^[\x21-\x24\x26-\x7e](?:[\x20-\x24\x26-\x7e]*[\x21-\x24\x26-\x7e])?$/

export function headerSafe(value: string): string {
  if (SAFE.test(value)) return value
  let out = ''
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

/**
 * Writes the verified identity into the configured headers. Only `ctx.identity` (what authn
 * verified) is read; sanitize has already removed any header of these names the client sent.
 * Scopes are sorted so the value is stable whatever order the token listed them in.
 */
export function createIdentityHeaderWriter(names: Pick<IdentityConfig['headers'], 'subject' | 'clientId' | 'scopes' | 'issuer'>): IdentityHeaderWriter {
  const subject = names.subject.toLowerCase()
  const clientId = names.clientId.toLowerCase()
  const scopes = names.scopes.toLowerCase()
  const issuer = names.issuer.toLowerCase()
  // A cached identity serves many requests: its header values are made once, on its first request
  // (the map holds them only as long as the token cache holds the identity).
  const made = new WeakMap<Identity, readonly string[]>()
  function valuesOf(identity: Identity): readonly string[] {
    const out: string[] = []
    if (identity.subject !== undefined) out.push(subject, headerSafe(identity.subject))
    if (identity.clientId !== undefined) out.push(clientId, headerSafe(identity.clientId))
    if (identity.scopes.size !== 0) out.push(scopes, headerSafe([...identity.scopes].sort().join(' ')))
    out.push(issuer, headerSafe(identity.issuer))
    made.set(identity, out)
    return out
  }
  return (headers, identity) => {
    const values = made.get(identity) ?? valuesOf(identity)
    for (let i = 0; i < values.length; i += 2) headers[values[i]] = values[i + 1]
  }
}
