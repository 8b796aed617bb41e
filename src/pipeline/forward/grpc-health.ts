import type { Dispatcher } from 'undici'

/**
 * A probe in the gRPC health-checking protocol (grpc/doc/health-checking.md): a unary call of
 * grpc.health.v1.Health/Check, healthy when the answer's status is SERVING. The two messages are a
 * string and an enum, so they are encoded and decoded here (protobuf wire format, a dozen bytes)
 * rather than through a protobuf library and generated code.
 */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check'

const SERVING = 1
const STATUS_NAMES: Readonly<Record<number, string>> = { 0: 'unknown', 2: 'not_serving', 3: 'service_unknown' }

function varint(value: number): number[] {
  const bytes: number[] = []
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80)
    value >>>= 7
  }
  bytes.push(value)
  return bytes
}

/** A length-prefixed gRPC message (uncompressed) holding HealthCheckRequest { string service = 1 }. */
export function healthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8')
  // proto3 leaves out a field at its default: the empty service name is an empty message.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, ...varint(name.length)]), name])
  const head = Buffer.alloc(5)
  head.writeUInt32BE(message.length, 1)
  return Buffer.concat([head, message])
}

/** Reads a varint at `at`; undefined past the end or past 35 bits. */
function readVarint(buf: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0
  for (let shift = 0, i = at; i < buf.length && shift < 35; shift += 7, i++) {
    value += (buf[i] & 0x7f) * 2 ** shift
    if ((buf[i] & 0x80) === 0) return { value, next: i + 1 }
  }
  return undefined
}

/**
 * HealthCheckResponse.status (field 1, an enum) from the answer's body: one uncompressed
 * length-prefixed message; undefined when the body is not that.
 */
export function servingStatus(body: Buffer): number | undefined {
  if (body.length < 5 || body[0] !== 0) return undefined
  const length = body.readUInt32BE(1)
  if (body.length !== 5 + length) return undefined
  const message = body.subarray(5)
  let status = 0
  let at = 0
  while (at < message.length) {
    const tag = readVarint(message, at)
    if (tag === undefined) return undefined
    at = tag.next
    const field = Math.floor(tag.value / 8)
    const wire = tag.value % 8
    if (wire === 0) {
      const v = readVarint(message, at)
      if (v === undefined) return undefined
      if (field === 1) status = v.value
      at = v.next
    } else if (wire === 2) {
      const len = readVarint(message, at)
      if (len === undefined) return undefined
      at = len.next + len.value
    } else if (wire === 1) at += 8
    else if (wire === 5) at += 4
    else return undefined
  }
  return at === message.length ? status : undefined
}

interface Answer {
  readonly statusCode: number
  /** The grpc-status field, from the trailers or from the head (an answer without messages, Trailers-Only). */
  readonly grpcStatus: string | undefined
  readonly body: Buffer
}

/** The value of `name` in undici's raw fields (name, value, … as Buffers) or in an HTTP/2 field object. */
function field(fields: ReadonlyArray<Buffer | string> | Readonly<Record<string, string | string[] | undefined>> | null | undefined, name: string): string | undefined {
  if (fields == null) return undefined
  if (Array.isArray(fields)) {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i].toString('latin1').toLowerCase() === name) return fields[i + 1].toString('latin1')
    return undefined
  }
  const value = (fields as Record<string, string | string[] | undefined>)[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * One unary call. undici's request() reads trailers as raw fields only, while its HTTP/2 client
 * hands them over as an object (they would be lost), so the call is dispatched with a handler that
 * reads both.
 */
function unaryCall(dispatcher: Dispatcher, origin: string, message: Buffer, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let statusCode = 0
    let grpcStatus: string | undefined
    const chunks: Buffer[] = []
    let abort: ((err?: Error) => void) | undefined
    const timer = setTimeout(() => abort?.(Object.assign(new Error('health check timed out'), { code: 'timeout' })), timeoutMs)
    const settle = (err: Error | undefined) => {
      clearTimeout(timer)
      if (err === undefined) resolve({ statusCode, grpcStatus, body: Buffer.concat(chunks) })
      else reject(err)
    }
    dispatcher.dispatch(
      {
        origin,
        path: HEALTH_CHECK_PATH,
        method: 'POST',
        headers: { 'content-type': 'application/grpc', te: 'trailers' },
        body: message,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      },
      {
        onConnect: (a: (err?: Error) => void) => (abort = a),
        onHeaders: (status: number, headers: Buffer[]) => {
          statusCode = status
          grpcStatus = field(headers, 'grpc-status')
          return true
        },
        onData: (chunk: Buffer) => (chunks.push(chunk), true),
        onComplete: (trailers: Buffer[] | Record<string, string | string[] | undefined> | null) => {
          grpcStatus = field(trailers, 'grpc-status') ?? grpcStatus
          settle(undefined)
        },
        onError: (err: Error) => settle(err),
      } as unknown as Dispatcher.DispatchHandler,
    )
  })
}

/** One probe of `origin`: undefined when it answers SERVING, else why not (`grpc_status_14`, `not_serving`, …). */
export async function grpcHealthProbe(dispatcher: Dispatcher, origin: string, service: string, timeoutMs: number): Promise<string | undefined> {
  const { statusCode, grpcStatus, body } = await unaryCall(dispatcher, origin, healthCheckRequest(service), timeoutMs)
  if (statusCode !== 200) return `status_${statusCode}`
  if (grpcStatus !== '0') return grpcStatus !== undefined && /^[0-9]{1,2}$/.test(grpcStatus) ? `grpc_status_${grpcStatus}` : 'invalid_response'
  const status = servingStatus(body)
  if (status === undefined) return 'invalid_response'
  return status === SERVING ? undefined : (STATUS_NAMES[status] ?? `status_${status}`)
}
