import type { IncomingHttpHeaders } from 'node:http'
import { constants, Http2ServerRequest, Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'

/**
 * HTTP/2 on a listener (`tls.http2: true`, or `h2c`): node's compatibility API hands each stream over as
 * a request/response pair shaped like node:http's, and the pipeline runs on it unchanged. What
 * differs is made to look like HTTP/1.1 here, once, so no stage needs a second code path:
 * - the header object holds no pseudo-header fields (`:method`, `:path`, `:scheme`,
 *   `:authority`), so nothing the client put in one is forwarded as a header;
 * - `host` is the `:authority` when the client sent no Host (RFC 9113 §8.3.1: an intermediary
 *   that converts to HTTP/1.1 creates one from it); sanitize refuses a Host that differs from it;
 * - a body without Content-Length (HTTP/2 frames bodies itself, RFC 9113 §8.1) is marked
 *   `transfer-encoding: chunked`, as HTTP/1.1 would frame it: forward then streams it, counted
 *   against server.maxBodyBytes, and undici frames it towards the upstream.
 * rawHeaders stays as received (pseudo-header fields included): the checks that count field lines
 * (two Authorization, two Host) read it.
 *
 * nghttp2 (in node) refuses the message errors HTTP/1.1 parsing had to guard against, before the
 * stream is handed over: connection-specific fields (Connection, Transfer-Encoding, Keep-Alive,
 * Upgrade, Proxy-Connection), TE other than `trailers`, a Content-Length the DATA frames do not
 * match, several Content-Length fields, missing or repeated pseudo-header fields, upper-case names
 * (RFC 9113 §8.2).
 */
export class GatewayHttp2Request extends Http2ServerRequest {
  /**
   * A WebSocket opened over this stream (RFC 8441): an extended CONNECT with `:protocol:
   * websocket`, which the listener advertises (SETTINGS_ENABLE_CONNECT_PROTOCOL). Its method reads
   * `GET`: it is routed, authorized and sent to the upstream as the HTTP/1.1 handshake it stands for
   * (RFC 8441 §5), and its stream carries no body but the tunnel's bytes.
   */
  readonly websocket: boolean

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, options: ConstructorParameters<typeof Http2ServerRequest>[2], rawHeaders: readonly string[]) {
    super(stream, headers, options, rawHeaders)
    // (One that declares a body is not: its DATA frames are the tunnel's. It stays a CONNECT, refused.)
    this.websocket = headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket' && headers['content-length'] === undefined
    // Own properties over the prototype's getters (the compatibility class keeps the original,
    // pseudo-header fields included, for its method and url).
    Object.defineProperty(this, 'headers', { value: http1View(headers, stream.endAfterHeaders || this.websocket), enumerable: true })
    if (this.websocket) Object.defineProperty(this, 'method', { value: 'GET', enumerable: true })
  }

  /** What node:http does with a body nobody will read (the forward handler calls it): discard it. */
  _dump(): void {
    this.resume()
  }
}

/** The request's header fields as HTTP/1.1 would have carried them (the class comment above says how). */
export function http1View(headers: IncomingHttpHeaders, endAfterHeaders: boolean): IncomingHttpHeaders {
  const view: IncomingHttpHeaders = {}
  for (const name in headers) if (name.charCodeAt(0) !== 58 /* ':' */) view[name] = headers[name]
  const authority = headers[':authority']
  if (view.host === undefined && typeof authority === 'string') view.host = authority
  if (!endAfterHeaders && view['content-length'] === undefined) view['transfer-encoding'] = 'chunked'
  return view
}

/**
 * The response class: node:http's ServerResponse says `destroyed` once its connection is gone,
 * which the pipeline reads (a client that left before an answer is a 499, not a pipeline bug).
 */
export class GatewayHttp2Response extends Http2ServerResponse {}
Object.defineProperty(GatewayHttp2Response.prototype, 'destroyed', {
  get(this: Http2ServerResponse): boolean {
    return this.stream.destroyed
  },
  configurable: true,
})

/**
 * Whether a request came over HTTP/2: told by its class, not its version, since node's HTTP/1
 * parser also takes a request line that says HTTP/2.0.
 */
export function isHttp2(req: object): req is GatewayHttp2Request {
  return req instanceof GatewayHttp2Request
}

const kOpenStreams = Symbol('portcullis.openStreams')
const kServedStreams = Symbol('portcullis.servedStreams')
const kPrematureResets = Symbol('portcullis.prematureResets')
type CountedSession = ServerHttp2Session & { [kOpenStreams]?: number; [kServedStreams]?: number; [kPrematureResets]?: number }

/**
 * Rapid reset (CVE-2023-44487): a client that opens streams and resets them before their answer
 * makes the gateway start a request (and often an upstream request) for each, at no cost to
 * itself. nghttp2 limits stream resets only after about a thousand, and node reports nothing
 * then. Past RAPID_RESET_MIN_STREAMS streams on a connection, when more than half of them were
 * reset by the client before the gateway's answer ended and within PREMATURE_MS of their start,
 * the connection is closed (ENHANCE_YOUR_CALM) and recorded, as Envoy's premature-reset guard
 * does. A client that cancels calls it no longer needs (a gRPC watch, a page left) cancels later.
 */
const RAPID_RESET_MIN_STREAMS = 100
const PREMATURE_MS = 1000
/** The code of the error a connection is ended with for rapid reset (sessionFailure's `rapid_reset`). */
const RAPID_RESET = 'PORTCULLIS_RAPID_RESET'

/**
 * Counts a session's streams the gateway is answering (the session timeout spares a session
 * waiting on an upstream, as node:http spares a connection that owes a response), the streams it
 * has served (server.maxRequestsPerSocket: past it, the session is told to go away, GOAWAY, once
 * its streams finish; the client opens a new connection for the next request) and the streams
 * its client reset before their answer (rapid reset, above: the session's 'error' then says so).
 *
 * False for a stream with no session: node hands streams over a tick after it read them, and one
 * reset in the same read, or whose session has ended since (the rapid-reset guard, on a burst read
 * in one go), has nothing left to answer it (onSessionStream counted it).
 */
export function streamStarted(stream: ServerHttp2Stream, res: GatewayHttp2Response, maxPerSession: number): boolean {
  const session = stream.session as ServerHttp2Session | undefined
  if (session === undefined) return false
  const counted = session as CountedSession
  counted[kOpenStreams] = (counted[kOpenStreams] ?? 0) + 1
  const served = (counted[kServedStreams] ?? 0) + 1
  counted[kServedStreams] = served
  const startedAt = performance.now()
  res.once('close', () => {
    counted[kOpenStreams]!--
    // Reset (by the client, or by nghttp2 for its error) before the gateway's answer ended, soon.
    if (res.stream.rstCode === 0 || res.writableEnded || performance.now() - startedAt > PREMATURE_MS) return
    prematureReset(counted, served)
  })
  if (maxPerSession > 0 && served >= maxPerSession && !session.closed) session.close()
  return true
}

/**
 * A session's 'stream' listener. node hands a stream over a tick after it read its HEADERS; one
 * whose RST_STREAM came in the same read is handed over already closed, with no session to answer
 * on (the listener drops it). It counts as a stream served and reset before its answer: a rapid
 * reset sent in one burst is met by the same guard as a paced one.
 */
export function onSessionStream(this: ServerHttp2Session, stream: ServerHttp2Stream): void {
  if (!stream.destroyed) return
  const counted = this as CountedSession
  const served = (counted[kServedStreams] ?? 0) + 1
  counted[kServedStreams] = served
  prematureReset(counted, served)
}

function prematureReset(session: CountedSession, served: number): void {
  const premature = (session[kPrematureResets] ?? 0) + 1
  session[kPrematureResets] = premature
  if (served >= RAPID_RESET_MIN_STREAMS && premature * 2 > served && !session.destroyed) {
    session.destroy(Object.assign(new Error('rapid reset'), { code: RAPID_RESET }), constants.NGHTTP2_ENHANCE_YOUR_CALM)
  }
}

/**
 * A session silent for the listener's timeout: an idle one is closed gracefully (GOAWAY); one whose
 * client stopped reading (bytes wait to be written) is cut; one waiting on an upstream is left to
 * that upstream's timeouts, as node:http leaves such a connection.
 */
export function sessionTimedOut(session: ServerHttp2Session): void {
  if (((session as CountedSession)[kOpenStreams] ?? 0) === 0) {
    session.close()
    return
  }
  if ((session.socket?.writableLength ?? 0) > 0) session.destroy()
}

/**
 * Ends a stream whose request body the gateway will not read (refused before it arrived, or not
 * complete in time) once its answer is written: RST_STREAM with NO_ERROR (RFC 9113 §8.1: a server
 * that has answered in full may stop the rest of a request that way), so the client stops sending.
 * The answer's frames go out first (the tests read the whole answer).
 *
 * The stream is closed only once its answer is handed over in full ('finish'). node's close()
 * waits for that itself, but a stream closed while its answer was still being written, on a
 * session then destroyed (a connection error from the client), could leave node's HTTP/2 session
 * packing frames in a loop, its memory growing until the process died (node 20; seen with
 * WebSocket tunnels on the same connection, test/e2e/websocket.test.ts).
 */
export function endStream(stream: ServerHttp2Stream): void {
  if (stream.writableFinished) resetAnswered(stream)
  else stream.once('finish', () => resetAnswered(stream))
}

function resetAnswered(stream: ServerHttp2Stream): void {
  if (!stream.destroyed && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR)
}

/** nghttp2's error numbers (nghttp2.h) for what a client did wrong, as event reasons. */
const SESSION_FAILURES: Readonly<Record<number, string>> = {
  [-904]: 'flood', // NGHTTP2_ERR_FLOODED: rapid reset, settings, ping or other frame floods
  [-505]: 'protocol_error', // NGHTTP2_ERR_PROTO
  [-903]: 'bad_preface', // NGHTTP2_ERR_BAD_CLIENT_MAGIC: not HTTP/2 (junk after ALPN chose h2)
  [-524]: 'flow_control', // NGHTTP2_ERR_FLOW_CONTROL
  [-523]: 'header_compression', // NGHTTP2_ERR_HEADER_COMP
}

/**
 * Why an HTTP/2 session ended with an error: `rapid_reset` when the gateway ended it for that
 * (streamStarted), nghttp2's reason when it names something the client did (above),
 * `session_error` otherwise.
 */
export function sessionFailure(err: { readonly errno?: number; readonly code?: string }): string {
  if (err.code === RAPID_RESET) return 'rapid_reset'
  return (err.errno !== undefined && SESSION_FAILURES[err.errno]) || 'session_error'
}
