import { HOP_BY_HOP, connectionListed } from '../sanitize/hop-by-hop.js'

/** Upstream response fields never relayed: hop-by-hop ones (RFC 9110 §7.6.1) and the request id we set. */
const DROP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'x-request-id'])

/**
 * undici's raw response headers (name, value, name, value, … as Buffers) → the flat string array
 * `res.writeHead` takes as is. latin1 both ways keeps every byte of a value exactly (node writes
 * header strings as latin1). Content-Length is kept; node re-frames everything else.
 */
export function responseHeaders(raw: ReadonlyArray<Buffer | string>, requestId: string): string[] {
  const out: string[] = []
  let listed: string[] | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1')
    const lower = name.toLowerCase()
    if (DROP.has(lower)) {
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
