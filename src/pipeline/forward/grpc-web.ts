/**
 * gRPC-Web (grpc/grpc-web, PROTOCOL-WEB.md): gRPC for clients that cannot read HTTP/2 trailers,
 * browsers first. A call is a POST whose body holds the same length-prefixed messages as gRPC;
 * the answer carries the call's status in a last frame of the body (flag 0x80) instead of in
 * trailers. In the `-text` variant both bodies are base64. On a route with `grpcWeb: true` the
 * gateway translates: the upstream gets an ordinary gRPC call over HTTP/2, the client its
 * gRPC-Web answer, over HTTP/1.1 or HTTP/2.
 *
 * Written here: no maintained Node library translates gRPC-Web inside a proxy (Envoy does it in
 * C++, the grpc-web project's own proxy is Envoy), and the framing is a flag byte and a length.
 */

/** How a gRPC-Web call is encoded: base64 (`-text`) or not, and its message format (`+proto`, or none). */
export interface GrpcWebMode {
  readonly text: boolean
  /** `+proto`, `+json`…, or '' */
  readonly format: string
}

const GRPC_WEB = /^application\/grpc-web(-text)?(\+[A-Za-z0-9.-]+)?[ \t]*(?:;|$)/i

/** The call's encoding from its Content-Type, or undefined when it is no gRPC-Web call. */
export function grpcWebModeOf(contentType: string | undefined): GrpcWebMode | undefined {
  if (contentType === undefined) return undefined
  const m = GRPC_WEB.exec(contentType)
  return m === null ? undefined : { text: m[1] !== undefined, format: (m[2] ?? '').toLowerCase() }
}

/** The Content-Type of the gRPC call sent upstream. */
export function upstreamContentType(mode: GrpcWebMode): string {
  return `application/grpc${mode.format}`
}

/** The Content-Type of the answer to the client: the encoding it used. */
export function clientContentType(mode: GrpcWebMode): string {
  return `application/grpc-web${mode.text ? '-text' : ''}${mode.format}`
}

/**
 * The frame that ends a gRPC-Web answer: flag 0x80, a 4-byte length, then the trailer fields as an
 * HTTP/1.1 header block (`name:value\r\n`, lower-case names).
 */
export function trailerFrame(fields: Readonly<Record<string, string | string[]>>): Buffer {
  let block = ''
  for (const name of Object.keys(fields)) {
    const value = fields[name]
    for (const v of typeof value === 'string' ? [value] : value) block += `${name.toLowerCase()}:${v}\r\n`
  }
  const body = Buffer.from(block, 'latin1')
  const head = Buffer.alloc(5)
  head[0] = 0x80
  head.writeUInt32BE(body.length, 1)
  return Buffer.concat([head, body])
}

/** The code of the error a `-text` body that is not base64 fails with (upstream-error.ts: 400). */
export const GRPC_WEB_BAD_TEXT = 'PORTCULLIS_GRPC_WEB_BAD_TEXT'

const BASE64_TEXT = /^[A-Za-z0-9+/=]*$/
const PADDED_GROUP = /^[A-Za-z0-9+/]{2}(?:==|[A-Za-z0-9+/]=)$/

/**
 * Decodes a `-text` request body as it streams (body-limit.ts, upstreamBody). A client may send
 * several base64 runs one after the other, each padded (a message per run), so the text is decoded
 * a padded group at a time; whitespace is skipped. Anything else than base64 fails the call.
 */
export class Base64Decoder {
  private pending = ''

  push(chunk: Buffer): Buffer | Error {
    this.pending += chunk.toString('latin1').replace(/[ \t\r\n]/g, '')
    const whole = this.pending.length - (this.pending.length % 4)
    const decoded = decodeGroups(this.pending.slice(0, whole))
    this.pending = this.pending.slice(whole)
    return decoded
  }

  /** The end of the body: nothing may be left over. */
  end(): Buffer | Error {
    return this.pending.length > 0 ? badText() : Buffer.alloc(0)
  }
}

function decodeGroups(text: string): Buffer | Error {
  if (!BASE64_TEXT.test(text)) return badText()
  const parts: Buffer[] = []
  let start = 0
  for (let pad = text.indexOf('='); pad !== -1; pad = text.indexOf('=', start)) {
    // The group of four holding this '=' ends a run: decode up to its end on its own.
    const end = (Math.floor(pad / 4) + 1) * 4
    const run = text.slice(start, end)
    // Padding ends its group, after at least two characters: "ab=c" or "a===" is no base64.
    if (!PADDED_GROUP.test(run.slice(-4))) return badText()
    parts.push(Buffer.from(run, 'base64'))
    start = end
  }
  if (start < text.length) parts.push(Buffer.from(text.slice(start), 'base64'))
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

function badText(): Error {
  return Object.assign(new Error('gRPC-Web text body is not base64'), { code: GRPC_WEB_BAD_TEXT })
}

/**
 * Encodes an answer body to base64 as it streams (`-text`): each chunk's bytes up to a multiple of
 * three are written at once, the rest carried to the next, so the output is one unpadded run
 * until end() pads its last group.
 */
export class Base64Encoder {
  private carry: Buffer | undefined = undefined

  push(chunk: Buffer): string {
    const bytes = this.carry === undefined ? chunk : Buffer.concat([this.carry, chunk])
    const whole = bytes.length - (bytes.length % 3)
    this.carry = whole === bytes.length ? undefined : bytes.subarray(whole)
    return bytes.subarray(0, whole).toString('base64')
  }

  end(): string {
    const rest = this.carry
    this.carry = undefined
    return rest === undefined ? '' : rest.toString('base64')
  }
}
