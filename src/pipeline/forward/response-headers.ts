import { HOP_BY_HOP, connectionListed } from '../sanitize/hop-by-hop.js'

/** Upstream response fields never relayed: hop-by-hop ones (RFC 9110 §7.6.1) and the request id we set. */
const ALWAYS_DROPPED: readonly string[] = [...HOP_BY_HOP, 'x-request-id']
const DROP: ReadonlySet<string> = new Set(ALWAYS_DROPPED)

/**
 * The set of upstream response fields a config drops: the hop-by-hop ones and the request id,
 * plus `responses.stripHeaders` (the fields that tell which server software answered). Made once
 * per config; looking a field up costs what it did before.
 */
export function droppedResponseFields(strip: readonly string[]): ReadonlySet<string> {
  return new Set([...ALWAYS_DROPPED, ...strip.map((n) => n.toLowerCase())])
}

/** The code upstream-error.ts maps to `invalid_response`. */
export const RESPONSE_TRANSFER_CODING = 'PORTCULLIS_RESPONSE_TRANSFER_CODING'

const CHUNKED = Buffer.from('chunked')

/** A Transfer-Encoding field line that is exactly `chunked` (any case), compared without a copy. */
function isChunked(v: Buffer | string): boolean {
  if (typeof v === 'string') return v.toLowerCase() === 'chunked'
  if (v.length !== CHUNKED.length) return false
  for (let i = 0; i < v.length; i++) if ((v[i] | 0x20) !== CHUNKED[i]) return false
  return true
}

/**
 * undici's raw response headers (name, value, name, value, … as Buffers) → the flat string array
 * `res.writeHead` takes as is. latin1 both ways keeps every byte of a value exactly (node writes
 * header strings as latin1). Content-Length is kept; node re-frames everything else. Throws on a
 * transfer coding other than chunked.
 */
export function responseHeaders(raw: ReadonlyArray<Buffer | string>, requestId: string, drop: ReadonlySet<string> = DROP): string[] {
  const out: string[] = []
  let listed: string[] | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1')
    const lower = name.toLowerCase()
    if (drop.has(lower)) {
      // undici takes chunked off; any other coding (gzip, chunked) would reach the client still
      // applied, with nothing left to say so: refused (onHeaders throws, undici aborts, 502).
      if (lower === 'transfer-encoding' && !isChunked(raw[i + 1])) {
        throw Object.assign(new Error('response transfer coding other than chunked'), { code: RESPONSE_TRANSFER_CODING })
      }
      if (lower === 'connection') {
        const more = connectionListed(raw[i + 1].toString('latin1'))
        if (more) listed = listed ? listed.concat(more) : more
      }
      continue
    }
    out.push(name, raw[i + 1].toString('latin1'))
  }
  if (listed !== undefined) return withoutListed(out, listed, requestId)
  out.push('x-request-id', requestId)
  return out
}

function withoutListed(headers: string[], listed: readonly string[], requestId: string): string[] {
  const kept: string[] = []
  for (let i = 0; i < headers.length; i += 2) {
    if (!listed.includes(headers[i].toLowerCase())) kept.push(headers[i], headers[i + 1])
  }
  kept.push('x-request-id', requestId)
  return kept
}
