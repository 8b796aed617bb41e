import { createServer, Server as HttpServer, ServerResponse, type IncomingMessage, type ServerOptions } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createH2cServer, createSecureServer, type Http2SecureServer, type Http2Server, type SecureServerOptions, type ServerHttp2Session } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Config, ListenerConfig, ListenerTlsConfig } from '../config/schema.js'
import { X509Certificate } from 'node:crypto'
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls'
import type { Gateway, ParserRefusal } from '../gateway.js'
import type { RequestContext } from '../pipeline/stage.js'
import { GatewayError } from '../errors/gateway-error.js'
import { toProblem } from '../errors/problem.js'
import { resolveRequestId, resolveTraceparent } from './request-id.js'
import { GatewayIncomingMessage, takeProtocolTokens } from './websocket.js'
import { TUNNEL_SHUTDOWN } from '../pipeline/forward/tunnel.js'
import { splitByPreface } from './preface.js'
import { endStream, GatewayHttp2Request, GatewayHttp2Response, isHttp2, onSessionStream, sessionFailure, sessionTimedOut, streamStarted } from './http2.js'

/**
 * node:http ↔ RequestContext adapter, client-side limits, health endpoints and draining.
 * The gateway it serves is swappable (config reload) without touching the listening sockets.
 */
export interface Listeners {
  readonly urls: readonly string[]
  /** Swaps the active gateway; requests already running finish on the one they started on. */
  swap(next: Gateway): Gateway
  current(): Gateway
  inFlight(): number
  /** Stops accepting, lets in-flight requests finish (up to drainTimeoutMs), then closes sockets. */
  drain(timeoutMs: number): Promise<void>
  /**
   * Applies the certificates (SNI ones too), keys, client CAs and minimum versions of a reloaded config to the TLS listeners
   * (new connections get them; open ones keep theirs). Listeners are matched by position; host,
   * port and whether a listener has TLS at all change on restart only.
   */
  updateTls(listeners: readonly ListenerConfig[]): void
}

type Server = HttpServer | HttpsServer | Http2SecureServer | Http2Server

/**
 * Closes every connection of a listener, idle or not (or only the idle ones). An HTTP/2 listener
 * has no such methods: node:http's, applied to it, close its HTTP/1.1 connections (node tracks them
 * the same way; an h2c listener has none); its HTTP/2 sessions are closed by the drain itself.
 */
function closeAllConnections(server: Server): void {
  HttpServer.prototype.closeAllConnections.call(server as HttpServer)
}
function closeIdleConnections(server: Server): void {
  HttpServer.prototype.closeIdleConnections.call(server as HttpServer)
}

/** What a TLS listener's secure context is made of; a reload makes a new one from the new config. */
function secureContextOf(tls: ListenerTlsConfig, pair: { readonly cert: string; readonly key: string } = tls): SecureContextOptions {
  return {
    cert: pair.cert,
    key: pair.key,
    minVersion: tls.minVersion,
    ciphers: tls.ciphers.join(':'),
    ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa }),
    // With a CRL, node has OpenSSL check revocation along the whole chain (X509_V_FLAG_CRL_CHECK_ALL).
    ...(tls.clientCrl === undefined ? {} : { crl: tls.clientCrl }),
  }
}

/**
 * The certificate for a server name a client asked for (SNI): an SNI entry's, undefined for the
 * listener's own, or null when the listener refuses the name (`unknownServerNames: refuse`).
 */
type SniLookup = (serverName: string) => SecureContext | undefined | null

const kRefusedPeer = Symbol('portcullis.refusedPeer')

/** The error an SNICallback refusal ends the handshake with; its code names the tls.handshake_failed reason. */
function unknownServerName(): Error {
  return Object.assign(new Error('no certificate for this server name'), { code: 'ERR_TLS_UNKNOWN_SERVER_NAME' })
}

/**
 * The listener's default secure context. With `unknownServerNames: refuse` it holds no
 * certificate, so a client that names no server (SNI is optional, and never sent for an IP
 * address) fails the handshake before any certificate, and the names in it, is shown; the
 * listener's own pair is then served through SNI, to the names it covers.
 */
function defaultContextOf(tls: ListenerTlsConfig): SecureContextOptions {
  const options = secureContextOf(tls)
  return tls.unknownServerNames === 'refuse' ? { ...options, cert: undefined, key: undefined } : options
}

/**
 * A listener's `tls.sni` certificates, made once per config: an exact name first, then a wildcard
 * `*.rest` for a name whose first label is followed by `rest` (one label only, as in RFC 6125
 * §6.4.3); under `unknownServerNames: refuse`, then the listener's own pair for the names it
 * covers, and a refusal for the rest. Each context carries the listener's minimum version,
 * ciphers, client CAs and CRLs, which a context chosen by SNI replaces.
 */
function sniLookupOf(tls: ListenerTlsConfig): SniLookup | undefined {
  const refuse = tls.unknownServerNames === 'refuse'
  if (tls.sni === undefined && !refuse) return undefined
  const exact = new Map<string, SecureContext>()
  const wildcard = new Map<string, SecureContext>()
  // Under refuse, the names the listener's own certificate covers (RFC 6125 matching by node's
  // X509Certificate.checkHost, subjectAltName DNS names only, a wildcard for one whole label).
  const own = refuse ? { context: createSecureContext(secureContextOf(tls)), cert: new X509Certificate(tls.cert) } : undefined
  const ownCovers = (name: string) => own !== undefined && own.cert.checkHost(name, { subject: 'never', partialWildcards: false }) !== undefined
  for (const entry of tls.sni ?? []) {
    const context = createSecureContext(secureContextOf(tls, entry))
    for (const name of entry.serverNames) {
      const lower = name.toLowerCase()
      if (lower.startsWith('*.')) wildcard.set(lower.slice(2), context)
      else exact.set(lower, context)
    }
  }
  return (serverName) => {
    const name = serverName.toLowerCase()
    const dot = name.indexOf('.')
    const entry = exact.get(name) ?? (dot > 0 ? wildcard.get(name.slice(dot + 1)) : undefined)
    if (entry !== undefined || own === undefined) return entry
    return ownCovers(name) ? own.context : null
  }
}

/** A listen failure, said plainly: what could not listen where, and why. */
export function listenError(what: string, host: string, port: number, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code
  const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : code === 'EADDRNOTAVAIL' ? 'address not available' : undefined
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  return new Error(`cannot listen on ${where} (${what}): ${why ? `${why} (${code})` : (err as Error).message}`)
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' }
/** The bytes after a WebSocket handshake on an HTTP/2 stream: none (they are the stream's DATA). */
const NO_HEAD = Buffer.alloc(0)
const ignore = (): void => {}

const kRequest = Symbol('portcullis.request')
/** Requests a connection has carried, counted when server.maxRequestsPerSocket is set. */
const kServed = Symbol('portcullis.served')
const kGateway = Symbol('portcullis.gateway')
/** A response whose request the pipeline runs: its context, and the gateway it started on (reloads swap the current one). */
type OwnedResponse = ServerResponse & { [kRequest]?: RequestContext; [kGateway]?: Gateway }

/** The response a connection currently owes (node keeps it on the socket), if any. */
function owedResponse(socket: Duplex): OwnedResponse | null | undefined {
  return (socket as { _httpMessage?: OwnedResponse | null })._httpMessage
}

/**
 * Runs `then` once no response is owed on the connection any more: at once, or when the last of
 * the responses node queued for its pipelined requests has finished (node's own 'finish' listener,
 * added when it made the response, runs first and hands the socket to the next one). A response
 * that never finishes (its client gone) leaves `then` never run: the socket is closed anyway.
 */
function afterOwedResponses(socket: Duplex, then: () => void): void {
  const owed = owedResponse(socket)
  if (owed) owed.once('finish', () => afterOwedResponses(socket, then))
  else then()
}

const REASON_PHRASES: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 417: 'Expectation Failed', 431: 'Request Header Fields Too Large', 501: 'Not Implemented' }

/**
 * The raw answer to a request node's parser refused (it never became a request object, so no
 * ServerResponse exists): problem+json like every other refusal, with a request id of its own
 * that nothing else carries, and the connection closed (its framing can no longer be trusted).
 */
function parserRefusal(code: ParserRefusal['code'], requestId: string): string {
  const problem = toProblem(new GatewayError(code), requestId, '')
  let head = `HTTP/1.1 ${problem.status} ${REASON_PHRASES[problem.status]}\r\nconnection: close\r\n`
  for (const [name, value] of Object.entries(problem.headers)) head += `${name}: ${value}\r\n`
  return `${head}\r\n${problem.body}`
}

/**
 * What a clientError was, when it was the parser refusing the request (llhttp's HPE_* codes) or the
 * request not arriving in time; undefined for a failing socket (ECONNRESET and the like).
 */
function refusalOf(err: NodeJS.ErrnoException): Pick<ParserRefusal, 'code' | 'reason'> | undefined {
  const code = err.code
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { code, reason: 'request_timeout' }
  if (typeof code !== 'string' || !/^HPE_[A-Z_]{1,48}$/.test(code)) return undefined
  return { code: code === 'HPE_HEADER_OVERFLOW' ? 'ERR_HTTP_HEADERS_TOO_LARGE' : 'ERR_HTTP_BAD_REQUEST', reason: code.slice(4).toLowerCase() }
}

/**
 * Why a TLS handshake failed, from OpenSSL's error code in lower case without its ERR_SSL_ prefix
 * or ERR_TLS_ prefix (`unsupported_protocol`, `no_shared_cipher`, `handshake_timeout`, …), or
 * undefined for a connection that simply went away.
 */
export function handshakeFailure(err: NodeJS.ErrnoException): string | undefined {
  const code = err.code
  if (typeof code !== 'string' || code === 'ECONNRESET' || code === 'EPIPE') return undefined
  const reason = code.replace(/^ERR_(SSL|TLS)_/, '').toLowerCase()
  return /^[a-z0-9_]{1,64}$/.test(reason) ? reason : 'handshake_failed'
}

export async function startListeners(config: Config, initial: Gateway): Promise<Listeners> {
  let gateway = initial
  let draining = false
  let inFlight = 0
  let onIdle: (() => void) | undefined
  const s = config.server
  const maxRequestsPerSocket = s.maxRequestsPerSocket
  // A response emits 'close' exactly once, so a plain listener shared by all requests does (no
  // per-request closure, no once() wrapper to build and remove).
  const responseClosed = (): void => {
    if (--inFlight === 0 && onIdle) onIdle()
  }

  function handle(req: IncomingMessage, res: ServerResponse, upgradeHead?: Buffer, http2 = false): void {
    // node hands over pipelined requests as soon as they are parsed, while the responses before
    // them are still owed; their response gets the socket once those are written (node queues
    // it with no socket until then). A request only starts when it does: one connection runs
    // one request at a time, however many it pipelines, instead of filling the upstream pool.
    const socket = res.socket
    if (socket == null) {
      // (An HTTP/2 response whose stream has closed already has none, and never will.)
      if (socket === null) res.once('socket', () => handle(req, res, upgradeHead))
      return
    }
    // An earlier response closed the connection (a refusal whose body was not read,
    // Connection: close, HTTP/1.0) and node still parses what the client sent after it
    // (RFC 9112 §9.6: a server that sends close MUST NOT process further requests). Node never
    // hands such a request's response a socket, or hands it one it has ended: nothing would
    // answer it, so it never starts, and never reaches an upstream.
    if (!socket.writable) return
    if (maxRequestsPerSocket > 0) {
      // The connection's last request: its response says close and the connection ends with it;
      // requests pipelined behind it are never started (above). node's own maxRequestsPerSocket
      // would instead answer each of them with a plain-text 503 after that close.
      const counted = socket as Socket & { [kServed]?: number }
      const served = (counted[kServed] ?? 0) + 1
      counted[kServed] = served
      if (served >= maxRequestsPerSocket) res.shouldKeepAlive = false
    }
    // An Upgrade other than a WebSocket handshake: answered as an ordinary request, the
    // connection's last (http/websocket.ts says why).
    if ((req as GatewayIncomingMessage).upgradeDeclined) res.shouldKeepAlive = false
    const url = req.url ?? '/'
    if (url === s.healthPath) {
      res.writeHead(draining ? 503 : 200, JSON_HEADERS).end(draining ? '{"status":"draining"}' : '{"status":"ok"}')
      return
    }
    if (url === s.readyPath) {
      const ready = !draining && gateway.ready()
      res.writeHead(ready ? 200 : 503, JSON_HEADERS).end(ready ? '{"status":"ready"}' : '{"status":"not_ready"}')
      return
    }
    // The gateway's public keys for services (internalTokens.jwksPath); the body is prebuilt.
    const jwks = gateway.jwks
    if (jwks !== undefined && url === jwks.path) {
      jwks.serve(req, res)
      return
    }
    const g = gateway
    const headers = req.headers
    const id = resolveRequestId(headers['x-request-id'])
    const [traceparent, traceId] = resolveTraceparent(headers.traceparent)
    const peerIp = req.socket.remoteAddress ?? ''
    if (draining) {
      // Tell keep-alive clients to reconnect elsewhere.
      res.shouldKeepAlive = false
      const p = toProblem(new GatewayError('ERR_GATEWAY_DRAINING'), id, s.realm)
      // (HTTP/2 has no Connection field: the drain's GOAWAY says it.)
      res.writeHead(p.status, http2 ? p.headers : { ...p.headers, connection: 'close' }).end(p.body)
      return
    }
    inFlight++
    res.on('close', responseClosed)
    const ctx: RequestContext = {
      id,
      traceparent,
      traceId,
      req,
      res,
      method: req.method ?? 'GET',
      clientIp: g.resolveClient(peerIp, headers['x-forwarded-for']),
      peerIp,
      startedAt: performance.now(),
      path: '',
      upgradeHead,
      http2,
      query: '',
      route: undefined,
      identity: undefined,
      tokenDigest: undefined,
      upstreamHeaders: {},
      status: 0,
      upstreamMs: undefined,
      over: false,
    }
    const owned = res as OwnedResponse
    owned[kRequest] = ctx
    owned[kGateway] = g
    g.pipeline.handle(ctx)
  }

  /**
   * A request on an HTTP/2 listener: an HTTP/1.1 one (a client that did not offer h2) is served as
   * on any listener; a stream is counted on its session, and one with a body gets the deadline
   * node:http sets an HTTP/1.1 request (server.requestTimeoutMs to arrive in full, or its route's
   * http2RequestTimeoutMs: the route stage has run by the time handle returns, it is synchronous),
   * after which it is refused with 408 as HTTP/1.1 would be, and the stream ended. A stream that
   * arrives with no session is dropped (streamStarted).
   */
  function handleHttp2(req: IncomingMessage, res: ServerResponse): void {
    if (!isHttp2(req)) return handle(req, res)
    const stream = req.stream
    if (!streamStarted(stream, res as unknown as GatewayHttp2Response, maxRequestsPerSocket)) return
    handle(req, res, undefined, true)
    if (req.complete || stream.endAfterHeaders) return
    const timer = setTimeout(() => {
      if (req.complete) return
      // The refusal ends the stream after its answer (pipeline/run.ts); a stream whose answer had
      // started, or was complete, is ended here.
      const ctx = (res as OwnedResponse)[kRequest]
      if (ctx !== undefined && !ctx.over && !res.headersSent) {
        ;(res as OwnedResponse)[kGateway]!.pipeline.interrupt(ctx, new GatewayError('ERR_HTTP_REQUEST_TIMEOUT', { reason: 'request_timeout' }))
      }
      endStream(stream)
    }, (res as OwnedResponse)[kRequest]?.route?.http2RequestTimeoutMs ?? s.requestTimeoutMs)
    timer.unref()
    const clear = (): void => clearTimeout(timer)
    req.once('end', clear)
    res.once('close', clear)
  }

  /**
   * A WebSocket over an HTTP/2 stream (RFC 8441): a handshake like an HTTP/1.1 one (the `upgrade`
   * listener), whose tunnel is the stream itself; the rest of the connection's streams go on.
   */
  function handleHttp2WebSocket(req: GatewayHttp2Request, res: ServerResponse): void {
    const stream = req.stream
    if (!streamStarted(stream, res as unknown as GatewayHttp2Response, maxRequestsPerSocket)) return
    // A reset or the drain's destroy may come before the tunnel listens for errors.
    stream.on('error', ignore)
    tunnels.add(stream)
    stream.once('close', () => tunnels.delete(stream))
    takeProtocolTokens(req as unknown as IncomingMessage)
    handle(req as unknown as IncomingMessage, res, NO_HEAD, true)
  }

  /** Open HTTP/2 sessions (connections), for the timeout handler and the drain's GOAWAY. */
  const sessions = new Set<ServerHttp2Session>()

  /**
   * An HTTP/2 listener. With TLS (tls.http2): ALPN h2, and http/1.1 for clients that do not offer
   * h2, which node hands to the same code as an HTTPS listener's, reading node:http's options from
   * the server object (createSecureServer does not take them). Without (h2c): HTTP/2 by prior
   * knowledge, and HTTP/1.1 on the same port, served by the `http1` companion server. Its settings
   * bound what one session may hold.
   */
  function createHttp2Listener(options: ServerOptions, tlsOptions: SecureServerOptions | undefined, http1?: HttpServer): Http2SecureServer | Http2Server {
    const http2Options = {
      Http2ServerRequest: GatewayHttp2Request,
      Http2ServerResponse: GatewayHttp2Response as never,
      // enableConnectProtocol: clients may open WebSockets on a stream (RFC 8441; 'connect' below).
      settings: { maxConcurrentStreams: s.http2MaxConcurrentStreams, maxHeaderListSize: s.maxHeaderBytes, enablePush: false, enableConnectProtocol: true },
    }
    if (tlsOptions === undefined) {
      const h2c = createH2cServer(http2Options, handleHttp2 as never)
      h2c.on('session', trackSession)
      // HTTP/1.1 on the same port (http/preface.ts): node's HTTP/2 connection handling takes the
      // connections that start with the preface, the companion HTTP/1.1 server the others. It
      // reads the bytes put back once it flows (its parser reads the socket natively after that).
      const http2Connection = h2c.listeners('connection') as Array<(this: Http2Server, socket: Socket) => void>
      h2c.removeAllListeners('connection')
      h2c.on('connection', (socket: Socket) =>
        splitByPreface(
          socket,
          s.headersTimeoutMs,
          (h2) => {
            for (const listener of http2Connection) listener.call(h2c, h2)
          },
          (h1) => {
            http1!.emit('connection', h1)
            h1.resume()
          },
        ),
      )
      return h2c
    }
    const server = createSecureServer({ ...tlsOptions, ...http2Options, allowHTTP1: true, Http1IncomingMessage: options.IncomingMessage }, handleHttp2 as never)
    Object.assign(server, {
      headersTimeout: options.headersTimeout,
      requestTimeout: options.requestTimeout,
      keepAliveTimeout: options.keepAliveTimeout,
      maxHeaderSize: options.maxHeaderSize,
      joinDuplicateHeaders: options.joinDuplicateHeaders,
      requireHostHeader: options.requireHostHeader,
      connectionsCheckingInterval: options.connectionsCheckingInterval,
      insecureHTTPParser: false,
    })
    // node's own listener turns a refused handshake into a clientError (answered as a refused
    // request would be); the tlsClientError listener below records it instead, as on HTTPS listeners.
    server.removeAllListeners('tlsClientError')
    server.on('session', trackSession)
    return server
  }

  function trackSession(session: ServerHttp2Session): void {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    // node ends a session that floods it (bursts of resets, pings, settings), breaks the protocol or
    // is not HTTP/2 at all, with an error: recorded, as a refused TLS handshake is. The address is
    // read now: the socket may be gone by then.
    const peerIp = session.socket?.remoteAddress ?? ''
    session.on('error', (err: Error & { errno?: number }) => gateway.http2SessionFailed({ reason: sessionFailure(err), peerIp }))
    session.on('stream', onSessionStream)
  }

  /** The events of a listener's server (or an h2c listener's HTTP/1.1 companion), and its timeouts. */
  function serveOn(server: Server, l: ListenerConfig): void {
    // A connection's client certificate is read once (token binding, Client-Cert): a TLS 1.2
    // renegotiation could swap it mid-connection, so none is allowed (TLS 1.3 has none).
    if (l.tls !== undefined) server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation())
    // node bounds idle and slow-sending clients itself: headersTimeout runs from the connection's
    // start (one that sends nothing gets a 408), requestTimeout until the request is complete,
    // keepAliveTimeout between requests. It does not bound a client that stops reading a
    // response, and undici's bodyTimeout pauses while that client's backpressure pauses the
    // upstream: this inactivity timeout does. While a response is in flight and nothing waits
    // to be written, the gateway is waiting on the upstream, whose own timeouts decide (200 or
    // 504), however long they are. On an HTTP/2 listener the same timeout watches each session
    // (http2.ts, sessionTimedOut).
    ;(server as HttpServer).timeout = Math.max(s.requestTimeoutMs, s.keepAliveTimeoutMs) + 1000
    server.on('timeout', (socket: Socket | ServerHttp2Session) => {
      if (!('writableLength' in socket)) return sessionTimedOut(socket)
      const res = owedResponse(socket)
      // Ignored, the timer starts again with the next bytes written or read.
      if (res && socket.writableLength === 0) return
      socket.destroy()
    })
    // Parse errors and request timeouts (408). A status line written while an earlier request's
    // response is owed would be read as that response, or land inside its body: close instead.
    // Answer only when no response is in flight (node's own handler reads _httpMessage too), or
    // when it belongs to the failing request and nothing of it was written.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // A TLS 1.2 client asking to renegotiate (refused: see secureConnection above) is a refused
      // TLS operation, recorded as a refused handshake is; its connection is cut without an answer.
      if (err.code === 'ERR_TLS_RENEGOTIATION_DISABLED') {
        gateway.tlsHandshakeFailed({ reason: 'renegotiation', peerIp: (socket as Socket).remoteAddress ?? '' })
        return socket.destroy()
      }
      const refusal = refusalOf(err)
      const owed = owedResponse(socket)
      const ctx = owed?.[kRequest]
      // The request the pipeline is running broke in its own message (its body cut short, a bad
      // chunk, not complete within requestTimeoutMs): it is that request's refusal, recorded with
      // its request id, route and identity (its access line too), not a nameless parser refusal
      // beside a 499.
      if (refusal !== undefined && ctx !== undefined && !ctx.over && !owed!.headersSent && !ctx.req.complete) {
        owed![kGateway]!.pipeline.interrupt(ctx, new GatewayError(refusal.code, { reason: refusal.reason }))
        return
      }
      const requestId = resolveRequestId(undefined)
      if (refusal !== undefined) gateway.parserRefused({ ...refusal, requestId, peerIp: (socket as Socket).remoteAddress ?? '' })
      if (!socket.writable || (owed && (owed.headersSent || owed.req.complete))) return socket.destroy()
      socket.end(parserRefusal(refusal?.code ?? 'ERR_HTTP_BAD_REQUEST', requestId))
    })
    // A refused TLS handshake (an old version, no shared cipher, a client certificate refused)
    // is recorded; a client that went away mid-handshake is not a refusal. With this listener
    // node no longer destroys the socket itself.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const reason = handshakeFailure(err)
      const peerIp = (socket as Socket).remoteAddress ?? (socket as Socket & { [kRefusedPeer]?: string })[kRefusedPeer] ?? ''
      if (reason !== undefined) gateway.tlsHandshakeFailed({ reason, peerIp })
      socket.destroy()
    })
    // An Expect other than 100-continue (RFC 9110 §10.1.1: 417). Without this listener node
    // answers a plain-text 417 that no event records.
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      const requestId = resolveRequestId(undefined)
      gateway.parserRefused({ code: 'ERR_HTTP_EXPECTATION_FAILED', reason: 'expect', requestId, peerIp: req.socket.remoteAddress ?? '' })
      const p = toProblem(new GatewayError('ERR_HTTP_EXPECTATION_FAILED'), requestId, s.realm)
      // The body the client may send anyway was never read: close rather than parse it as a request.
      res.shouldKeepAlive = false
      res.writeHead(p.status, isHttp2(req) ? p.headers : { ...p.headers, connection: 'close' }).end(p.body)
    })
    // A WebSocket handshake (the only upgrade node hands over, http/websocket.ts). node has let go
    // of the connection: the request runs the whole pipeline on a response made here, and only a
    // route with `websocket: true` whose upstream answers 101 turns it into a tunnel
    // (forward/tunnel.ts). Any other answer is the connection's last.
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Its errors (a reset) are ours to catch now, and node's timeouts no longer watch it: until
      // the tunnel sets its own, a client that stalls is cut after requestTimeoutMs.
      socket.on('error', () => socket.destroy())
      ;(socket as Socket).setTimeout(s.requestTimeoutMs, () => socket.destroy())
      tunnels.add(socket)
      socket.once('close', () => tunnels.delete(socket))
      takeProtocolTokens(req)
      // node hands a handshake over as soon as it has parsed it, even one pipelined behind
      // requests whose responses are still owed: its answer comes after theirs.
      afterOwedResponses(socket, () => {
        // The last owed response closed the connection, or the client left meanwhile.
        if (!socket.writable) return socket.destroy()
        // node set its keep-alive timeout when the owed response finished.
        ;(socket as Socket).setTimeout(s.requestTimeoutMs)
        const res = new ServerResponse(req)
        res.shouldKeepAlive = false
        res.assignSocket(socket as Socket)
        // A refusal (or an upstream's answer other than 101) ends the connection once it is written.
        res.once('finish', () => socket.end())
        handle(req, res, head)
      })
    })
    // CONNECT asks for a tunnel, which a gateway that authorizes each request never opens.
    // Without this listener node drops the connection without a word.
    server.on('connect', (req: IncomingMessage, socket: Duplex | ServerResponse) => {
      const requestId = resolveRequestId(undefined)
      gateway.parserRefused({ code: 'ERR_HTTP_METHOD_NOT_SUPPORTED', reason: 'connect', requestId, peerIp: req.socket.remoteAddress ?? '' })
      // On HTTP/2 a CONNECT is one stream (node hands its response over): refused on it alone,
      // but for an extended CONNECT that opens a WebSocket (RFC 8441), served as a handshake.
      if (isHttp2(req)) {
        if (req.websocket) return handleHttp2WebSocket(req, socket as ServerResponse)
        const p = toProblem(new GatewayError('ERR_HTTP_METHOD_NOT_SUPPORTED'), requestId, s.realm)
        ;(socket as ServerResponse).writeHead(p.status, p.headers).end(p.body)
        return
      }
      socket = socket as Duplex
      // node has let go of this socket: its errors (a reset) are ours to catch.
      socket.on('error', () => socket.destroy())
      // Nor do its timeouts apply any more: a client that never closes its side is cut.
      ;(socket as Socket).setTimeout(s.keepAliveTimeoutMs, () => socket.destroy())
      // A CONNECT pipelined behind a request whose response is still owed: a status line now
      // would be read as that response, or land inside its body. Close instead, as clientError does.
      if (!socket.writable || owedResponse(socket)) return socket.destroy()
      socket.end(parserRefusal('ERR_HTTP_METHOD_NOT_SUPPORTED', requestId))
    })
  }

  const servers: Server[] = []
  // The HTTP/1.1 servers of h2c listeners (createHttp2Listener): they never listen themselves.
  const companions: HttpServer[] = []
  const urls: string[] = []
  // Connections node handed over on a WebSocket handshake (handshaking or tunnelling): node's
  // closeAllConnections no longer sees them, so draining ends them here.
  const tunnels = new Set<Duplex>()
  // Per listener, swapped by updateTls: the SNI certificates of the config in force.
  const sniLookups: Array<SniLookup | undefined> = []
  for (const l of config.listeners) {
    const index = servers.length
    sniLookups[index] = l.tls === undefined ? undefined : sniLookupOf(l.tls)
    const options: ServerOptions = {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      maxHeaderSize: s.maxHeaderBytes,
      // node:http keeps only the first of duplicate singleton headers (Authorization among
      // them); authn reads req.rawHeaders to refuse a request that carries two.
      joinDuplicateHeaders: false,
      // RFC 9112 §3.2 still holds: the sanitize stage refuses an HTTP/1.1 request without Host,
      // in problem+json and with an event, where node would answer a plain-text 400.
      requireHostHeader: false,
      // How often node checks headersTimeout/requestTimeout; its 30 s default would let a
      // slowloris client hold a socket far longer than the configured timeouts.
      connectionsCheckingInterval: Math.min(1000, Math.ceil(s.headersTimeoutMs / 2)),
      // Hands only WebSocket handshakes to the 'upgrade' listener below (http/websocket.ts).
      IncomingMessage: GatewayIncomingMessage,
    }
    // The config loader checked that the certificate and key load (semantic.ts, tlsProblem). A
    // handshake gets headersTimeoutMs, as a request head does (node's default is 120 s: a client
    // that never finishes one would hold its socket that long).
    const tlsOptions =
      l.tls === undefined
        ? undefined
        : {
            ...defaultContextOf(l.tls),
            handshakeTimeout: s.headersTimeoutMs,
            requestCert: l.tls.clientCertificates !== 'none',
            rejectUnauthorized: l.tls.clientCertificates === 'require',
            // Always set on a TLS listener, so a reload can add SNI certificates; no context means the listener's own.
            // A method call on the connection's TLSSocket (this): a refusal destroys it before
            // tlsClientError, so its address is kept for the event first.
            SNICallback: function (this: TLSSocket, serverName: string, done: (err: Error | null, ctx?: SecureContext) => void) {
              const context = sniLookups[index]?.(serverName)
              if (context === null) {
                ;(this as TLSSocket & { [kRefusedPeer]?: string })[kRefusedPeer] = this.remoteAddress
                done(unknownServerName())
              } else done(null, context)
            },
          }
    // An h2c listener's HTTP/1.1 connections go to a server of their own, which never listens.
    const companion = l.h2c ? createServer(options, handle) : undefined
    const server: Server =
      tlsOptions === undefined
        ? l.h2c
          ? createHttp2Listener(options, undefined, companion)
          : createServer(options, handle)
        : l.tls?.http2 === true
          ? createHttp2Listener(options, tlsOptions)
          : createHttpsServer({ ...options, ...tlsOptions }, handle)
    // (The listening server counts every connection, whichever server serves it.)
    server.maxConnections = s.maxConnections
    serveOn(server, l)
    if (companion !== undefined) {
      serveOn(companion, l)
      companions.push(companion)
    }
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(l.port, l.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      // All or nothing: the listeners already open would otherwise serve on, half-started.
      for (const c of companions) c.close()
      await Promise.all(
        servers.map((open) => {
          const closed = new Promise((r) => open.close(r))
          closeAllConnections(open)
          return closed
        }),
      )
      throw listenError(`listeners[${servers.length}]`, l.host, l.port, err)
    }
    const addr = server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    urls.push(`${l.tls === undefined ? 'http' : 'https'}://${host}:${addr.port}`)
    servers.push(server)
    // node's HTTP/1.1 server starts checking its connections' headersTimeout and requestTimeout
    // once it listens; the companion serves the listener's connections from now on.
    companion?.emit('listening')
  }

  return {
    urls,
    swap(next) {
      const prev = gateway
      gateway = next
      return prev
    },
    current: () => gateway,
    inFlight: () => inFlight,
    updateTls(next) {
      servers.forEach((server, i) => {
        const tls = next[i]?.tls
        if (tls !== undefined && 'setSecureContext' in server) {
          server.setSecureContext(defaultContextOf(tls))
          sniLookups[i] = sniLookupOf(tls)
        }
      })
    },
    async drain(timeoutMs) {
      draining = true
      for (const server of [...servers, ...companions]) {
        server.close()
        closeIdleConnections(server)
      }
      // HTTP/2 clients are told to go away (GOAWAY): streams open now finish, new ones go elsewhere.
      for (const session of sessions) session.close()
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs)
          timer.unref()
          onIdle = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
      // Ended with a cause, so each tunnel records that it closed for the shutdown; their close
      // events come a turn of the loop later, and the shutdown waits for them (their records).
      // Before the sessions: a tunnel on an HTTP/2 stream would otherwise end with its session.
      const closed = [...tunnels].map((socket) => new Promise((r) => socket.once('close', r)))
      for (const socket of tunnels) socket.destroy(Object.assign(new Error('gateway shutting down'), { code: TUNNEL_SHUTDOWN }))
      for (const server of [...servers, ...companions]) closeAllConnections(server)
      for (const session of sessions) session.destroy()
      await Promise.all(closed)
    },
  }
}
