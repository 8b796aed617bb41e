import type { Socket } from 'node:net'

/**
 * The client connection preface of HTTP/2 (RFC 9113 §3.4). No HTTP/1.1 request starts like it:
 * its method, PRI, was reserved so that an HTTP/1.1 server refuses it.
 */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/**
 * An h2c listener also serves HTTP/1.1 on its port: the first bytes of a connection tell them
 * apart. A client that starts with the HTTP/2 preface speaks HTTP/2 by prior knowledge; any other
 * first bytes are an HTTP/1.1 request. The bytes read to decide are put back (unshift) for the
 * server that takes the connection, which reads them first. A client that sends nothing that
 * decides within `timeoutMs` (nothing at all, or a preface cut short) is disconnected.
 *
 * Written here rather than taken from a library (httpolyglot does this and more): the two servers
 * it hands connections to are the gateway's own, configured and watched by server.ts, and the
 * decision is a prefix comparison.
 */
export function splitByPreface(socket: Socket, timeoutMs: number, http2: (socket: Socket) => void, http1: (socket: Socket) => void): void {
  let seen: Buffer | undefined
  const fail = (): void => {
    socket.destroy()
  }
  const onData = (chunk: Buffer): void => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk])
    const n = Math.min(seen.length, PREFACE.length)
    const prefix = seen.compare(PREFACE, 0, n, 0, n) === 0
    // A preface still arriving: wait for the rest.
    if (prefix && seen.length < PREFACE.length) return
    socket.off('data', onData)
    socket.off('error', fail)
    socket.setTimeout(0)
    socket.removeListener('timeout', fail)
    socket.pause()
    socket.unshift(seen)
    if (prefix) http2(socket)
    else http1(socket)
  }
  socket.on('data', onData)
  socket.on('error', fail)
  socket.setTimeout(timeoutMs, fail)
}
