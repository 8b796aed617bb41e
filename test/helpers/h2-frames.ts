// HTTP/2 frames written by hand, for what node's client refuses to send (connection-specific
// fields, two Authorization fields, streams reset at once, broken sequences). RFC 9113 §4 framing,
// RFC 7541 §6.2.2 literal header fields (never indexed, no Huffman).

export function hpackInteger(value: number): Buffer {
  if (value < 127) return Buffer.from([value])
  const bytes = [127]
  let rest = value - 127
  while (rest >= 128) {
    bytes.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }
  bytes.push(rest)
  return Buffer.from(bytes)
}

export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0]), hpackInteger(name.length), Buffer.from(name), hpackInteger(Buffer.byteLength(value)), Buffer.from(value)]))
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(streamId, 5)
  return Buffer.concat([head, payload])
}

/** The error code of the first GOAWAY frame among a server's frames, if any. */
export function goawayCode(bytes: Buffer): number | undefined {
  for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
    if (bytes[at + 3] === 7 && at + 17 <= bytes.length) return bytes.readUInt32BE(at + 13)
  }
  return undefined
}

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
// Frame types and flags (RFC 9113 §6).
export const DATA = 0
export const HEADERS = 1
export const RST_STREAM = 3
export const SETTINGS = 4
export const PUSH_PROMISE = 5
export const PING = 6
export const GOAWAY = 7
export const WINDOW_UPDATE = 8
export const CONTINUATION = 9
export const END_STREAM = 0x1
export const END_HEADERS = 0x4

/** A 32-bit big-endian field (a stream id, an error code, a window increment). */
export const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(value >>> 0, 0)
  return b
}
