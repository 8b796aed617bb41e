import { subscribe } from 'node:diagnostics_channel'
import { constants, type ClientHttp2Session } from 'node:http2'

/**
 * Keeps an HTTP/2 upstream that breaks the protocol from ending the gateway's process.
 *
 * When the peer breaks HTTP/2 in certain ways (DATA on a stream before its HEADERS, a frame
 * larger than allowed), node fails to send a frame on that stream and then closes the session
 * itself (`onFrameError` in node's http2 core: a `'frameError'` on the stream, `close()` on the
 * session a moment later). It emits no `'goaway'`, and no `'close'` until the session's streams
 * have ended. undici 7 retires a session only on those events: it goes on treating the closed
 * session as its connection, and the next request it starts there throws
 * ERR_HTTP2_GOAWAY_SESSION from inside an event listener (another stream's timeout or end), an
 * uncaught exception. (undici fixed a form of this in a later major, which needs Node 22.)
 *
 * The same happens when node destroys a session on its own (a connection error, a socket error):
 * undici hears of it from events a tick later, and a stream's listener may start a request on the
 * destroyed session first (ERR_HTTP2_INVALID_SESSION).
 *
 * The guard makes such a close or destroy look to undici like what it amounts to, a GOAWAY:
 * undici then retires the session as it does when the peer sends one (the request at its head
 * fails, the connection is dropped, queued requests get a new one). It finds the session through
 * undici's `undici:client:connected` diagnostics channel (published once per new connection, so
 * not on the request path) and undici's own property on the socket; with another undici that
 * property is missing and the guard does nothing.
 */
export function guardHttp2Sessions(): void {
  if (subscribed) return
  subscribed = true
  subscribe('undici:client:connected', (message) => {
    const socket = (message as { socket?: object }).socket
    if (socket === undefined) return
    const key = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'http2Session')
    const session = key === undefined ? undefined : ((socket as Record<symbol, unknown>)[key] as ClientHttp2Session | null | undefined)
    if (session != null && typeof session.close === 'function') guard(session, socket as { destroyed?: boolean })
  })
}

let subscribed = false

function guard(session: ClientHttp2Session, socket: { destroyed?: boolean }): void {
  // A 'goaway' undici has seen (the peer's, or ours below): its handler calls close() itself.
  let announced = false
  session.prependListener('goaway', () => (announced = true))
  const announce = (s: ClientHttp2Session): void => {
    if (!announced && !s.closed && !s.destroyed) s.emit('goaway', constants.NGHTTP2_PROTOCOL_ERROR, 0)
  }
  const { close, destroy } = session
  session.close = function closeAnnounced(this: ClientHttp2Session, callback?: () => void): void {
    announce(this)
    close.call(this, callback)
  }
  // The same when node destroys the session on its own (a connection error, a socket error):
  // undici learns of it only from the events that follow, a tick later. Not when undici destroys
  // it itself, once the socket has closed: it has retired the session already.
  session.destroy = function destroyAnnounced(this: ClientHttp2Session, error?: Error, code?: number): void {
    if (socket.destroyed !== true) announce(this)
    destroy.call(this, error, code)
  }
}
