// A raw HTTP/2 upstream for tests and the upstream fuzzer: h2c by prior knowledge, with frames
// written by hand, so it can answer with what no HTTP/2 library would send. Requests are POSTs
// whose body names them (the request's fields are HPACK-coded, its DATA is not); once a stream's
// body has ended, `answer` gives the frames that answer it.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { DATA, END_STREAM, frame, HEADERS, PING, PREFACE, SETTINGS, u32, WINDOW_UPDATE } from './h2-frames.js'

/** The frames that answer stream `sid`, whose body was `name`; `close` ends the connection after them. */
export type RawAnswer = (sid: number, name: string) => { frames: Buffer[]; close?: boolean }

/** Starts the upstream on a free loopback port; resolves with its URL and the server. */
export async function startRawHttp2Upstream(answer: RawAnswer): Promise<{ url: string; server: Server }> {
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {})
    socket.write(frame(SETTINGS, 0, 0, Buffer.alloc(0)))
    let pending = Buffer.alloc(0)
    let prefaceRead = false
    const bodies = new Map<number, string>()
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      if (!prefaceRead) {
        if (pending.length < PREFACE.length) return
        if (pending.subarray(0, PREFACE.length).toString('latin1') !== PREFACE) return socket.destroy()
        pending = pending.subarray(PREFACE.length)
        prefaceRead = true
      }
      while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
        const length = pending.readUIntBE(0, 3)
        const [type, flags, sid] = [pending[3], pending[4], pending.readUInt32BE(5) & 0x7fffffff]
        const payload = pending.subarray(9, 9 + length)
        pending = pending.subarray(9 + length)
        if (type === SETTINGS && (flags & 1) === 0) socket.write(frame(SETTINGS, 1, 0, Buffer.alloc(0)))
        else if (type === PING && (flags & 1) === 0) socket.write(frame(PING, 1, 0, payload))
        else if (type === HEADERS) {
          bodies.set(sid, '')
          // (Requests here always carry a body, so a HEADERS never ends its stream.)
        } else if (type === DATA && bodies.has(sid)) {
          // The body arrives whole in practice; pad-free DATA is all the gateway sends.
          bodies.set(sid, bodies.get(sid)! + payload.toString('latin1'))
          // Keep the gateway's windows open: it may have many bodies in flight.
          if (length > 0) socket.write(Buffer.concat([frame(WINDOW_UPDATE, 0, 0, u32(length)), frame(WINDOW_UPDATE, 0, sid, u32(length))]))
          if ((flags & END_STREAM) !== 0) {
            const name = bodies.get(sid)!
            bodies.delete(sid)
            const { frames, close } = answer(sid, name)
            if (frames.length > 0) socket.write(Buffer.concat(frames))
            if (close) socket.end()
          }
        }
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}
