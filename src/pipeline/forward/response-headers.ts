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

/**
 * Fields a trailer section may not carry (RFC 9110 §6.5.1): the ones that frame, route or
 * authenticate a message, or that the response's handling has already used (its type, encoding,
 * caching, cookies, redirect and challenge), and the declaration of trailers itself. Past the
 * headers, a recipient could not act on them as their definition says, or would act on them late.
 */
const NOT_IN_TRAILERS: ReadonlySet<string> = new Set([
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'host',
  'authorization',
  'proxy-authenticate',
  'www-authenticate',
  'set-cookie',
  'cache-control',
  'expires',
  'age',
  'date',
  'location',
  'retry-after',
  'vary',
  'trailer',
])

/**
 * The upstream's trailer fields that go on to an HTTP/2 client (the grpc-status and grpc-message
 * of a gRPC answer, for instance), as an object for `addTrailers`, or undefined when none does.
 * undici hands them over as raw Buffers from an HTTP/1.1 upstream, as an object from an HTTP/2 one.
 * The fields a config drops from response headers are dropped here too (hop-by-hop ones, the
 * server software's), and so are pseudo-header fields and those of NOT_IN_TRAILERS.
 */
export function trailerFields(trailers: ReadonlyArray<Buffer | string> | Readonly<Record<string, string | string[] | undefined>>, drop: ReadonlySet<string> = DROP): Record<string, string | string[]> | undefined {
  const pairs: Array<[string, string | string[] | undefined]> = []
  if (Array.isArray(trailers)) {
    for (let i = 0; i + 1 < trailers.length; i += 2) pairs.push([trailers[i].toString('latin1'), trailers[i + 1].toString('latin1')])
  } else {
    for (const name of Object.keys(trailers)) pairs.push([name, (trailers as Record<string, string | string[] | undefined>)[name]])
  }
  let out: Record<string, string | string[]> | undefined
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase()
    if (value === undefined || lower.startsWith(':') || drop.has(lower) || NOT_IN_TRAILERS.has(lower)) continue
    out ??= {}
    const before = out[lower]
    out[lower] = before === undefined ? value : ([] as string[]).concat(before, value)
  }
  return out
}
