import { isUtf8 } from 'node:buffer'
import { invalidToken } from './reject.js'

export type Header = Readonly<Record<string, unknown>>
export type Payload = Readonly<Record<string, unknown>>

/** A compact JWS split and decoded, not yet verified. */
export interface ParsedJwt {
  readonly token: string
  readonly header: Header
  readonly payload: Payload
  /** ASCII `BASE64URL(header) "." BASE64URL(payload)`: the bytes the signature covers. */
  readonly signingInput: string
  readonly signature: Buffer
}

/** Three base64url segments (RFC 7515 §7.1); a JWE has five and is refused here. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

function decodeJsonObject(segment: string): Record<string, unknown> {
  // No base64url text has 4n+1 characters (RFC 4648 §5). Buffer's decoder drops the dangling one,
  // jose refuses the segment: without this the gateway's two signature paths would disagree.
  if (segment.length % 4 === 1) throw invalidToken('malformed')
  const bytes = Buffer.from(segment, 'base64url')
  // RFC 7515 §5.2 and RFC 7519 §7.2: the header and the claims must be valid UTF-8. Buffer's
  // decoder would turn a broken sequence into U+FFFD, so two byte strings would read as one, and
  // jose (which decodes strictly) would refuse a header the gateway's node:crypto path accepted.
  if (!isUtf8(bytes)) throw invalidToken('malformed')
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw invalidToken('malformed')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidToken('malformed')
  return value as Record<string, unknown>
}

/**
 * Splits and decodes a compact JWS, so the header and claim rules can run before any key is
 * looked up. The strict alphabet check matters: Buffer's base64url decoder skips unknown
 * characters, so without it two different strings could decode to one token. The signature is
 * checked by the caller: jose here (which parses the token again), node:crypto in the gateway.
 */
export function parseCompact(token: string): ParsedJwt {
  if (!COMPACT_JWS.test(token)) throw invalidToken('malformed')
  const dot1 = token.indexOf('.')
  const dot2 = token.indexOf('.', dot1 + 1)
  const header = decodeJsonObject(token.slice(0, dot1))
  const payload = decodeJsonObject(token.slice(dot1 + 1, dot2))
  // Only the canonical encoding of the signature is accepted, as the gateway does: otherwise
  // several strings (differing in unused trailing bits) would carry one valid signature.
  const sigText = token.slice(dot2 + 1)
  const signature = Buffer.from(sigText, 'base64url')
  if (signature.toString('base64url') !== sigText) throw invalidToken('malformed')
  return { token, header, payload, signingInput: token.slice(0, dot2), signature }
}
