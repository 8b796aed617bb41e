import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Base64Decoder, Base64Encoder, clientContentType, grpcWebModeOf, trailerFrame, upstreamContentType } from './grpc-web.js'

async function decodeAll(chunks: string[]): Promise<Buffer> {
  const decoder = new Base64Decoder()
  const out: Buffer[] = []
  for (const c of [...chunks.map((t) => decoder.push(Buffer.from(t, 'latin1'))), decoder.end()]) {
    if (c instanceof Error) throw c
    out.push(c)
  }
  return Buffer.concat(out)
}

test('the encoding of a call is read from its Content-Type; other types are no gRPC-Web call', () => {
  assert.deepEqual(grpcWebModeOf('application/grpc-web'), { text: false, format: '' })
  assert.deepEqual(grpcWebModeOf('application/grpc-web+proto'), { text: false, format: '+proto' })
  assert.deepEqual(grpcWebModeOf('Application/GRPC-WEB-TEXT+Proto; charset=utf-8'), { text: true, format: '+proto' })
  for (const other of [undefined, 'application/grpc', 'application/grpc+proto', 'application/grpc-webx', 'text/plain', 'application/grpc-web-textual']) {
    assert.equal(grpcWebModeOf(other), undefined, String(other))
  }
  const mode = grpcWebModeOf('application/grpc-web-text+proto')!
  assert.equal(upstreamContentType(mode), 'application/grpc+proto')
  assert.equal(clientContentType(mode), 'application/grpc-web-text+proto')
})

test('the trailer frame: flag 0x80, the length, lower-case name:value lines', () => {
  const frame = trailerFrame({ 'grpc-status': '0', 'Grpc-Message': 'ok', 'x-many': ['a', 'b'] })
  const block = 'grpc-status:0\r\ngrpc-message:ok\r\nx-many:a\r\nx-many:b\r\n'
  assert.equal(frame[0], 0x80)
  assert.equal(frame.readUInt32BE(1), block.length)
  assert.equal(frame.subarray(5).toString('latin1'), block)
})

test('a -text body decodes however it is cut, also as several padded runs; anything but base64 fails', async () => {
  const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256))
  const text = bytes.toString('base64')
  for (const cut of [1, 2, 3, 5, 64, 1000]) {
    const chunks: string[] = []
    for (let i = 0; i < text.length; i += cut) chunks.push(text.slice(i, i + cut))
    assert.ok((await decodeAll(chunks)).equals(bytes), `cut every ${cut}`)
  }
  // A message per run, each padded (what grpc-web clients may send), with whitespace between.
  const runs = [Buffer.from('a'), Buffer.from('bc'), Buffer.from('def'), Buffer.from('ghij')]
  assert.equal((await decodeAll([runs.map((r) => r.toString('base64')).join('\r\n')])).toString(), 'abcdefghij')
  for (const bad of ['QQ=A', 'QUJD*', 'QUJDRA', 'Q===QUJD']) {
    await assert.rejects(decodeAll([bad]), (err: Error & { code?: string }) => err.code === 'PORTCULLIS_GRPC_WEB_BAD_TEXT', bad)
  }
})

test('an answer encodes to one base64 run however its chunks fall, padded at the end', () => {
  const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i))
  for (const cut of [1, 2, 4, 7, 100]) {
    const enc = new Base64Encoder()
    let out = ''
    for (let i = 0; i < bytes.length; i += cut) out += enc.push(bytes.subarray(i, i + cut))
    out += enc.end()
    assert.equal(out, bytes.toString('base64'), `cut every ${cut}`)
  }
})
