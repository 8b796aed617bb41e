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
