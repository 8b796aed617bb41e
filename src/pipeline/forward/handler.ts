import type { IncomingMessage, ServerResponse } from 'node:http'
import { errors, type Dispatcher } from 'undici'
import type { Logger } from 'pino'
import type { RequestContext } from '../stage.js'
import { rateLimitResponseHeaders } from '../limits/index.js'
import { responseHeaders, trailerFields } from './response-headers.js'
import { mapUpstreamError } from './upstream-error.js'
import type { UpstreamBody } from './body-limit.js'
import { openTunnel, type TunnelOptions } from './tunnel.js'
import { withoutUpstreamCors } from '../route/cors.js'
import type { Socket } from 'node:net'
import type { Http2ServerRequest } from 'node:http2'
import { endStream } from '../../http/http2.js'
import { isGrpcRequest } from '../../errors/grpc.js'
import { Base64Encoder, clientContentType, trailerFrame, type GrpcWebMode } from './grpc-web.js'
import { createHash } from 'node:crypto'
import { GatewayError } from '../../errors/gateway-error.js'

const kHandler = Symbol('portcullis.forward')
type TrackedResponse = ServerResponse & { [kHandler]?: ForwardHandler }
/** node's own discard of a request body nobody read (what its server calls when a response ends before it). */
type DumpableRequest = IncomingMessage & { _dump(): void }

/**
 * One listener function shared by every request (no closure per request): it finds the request's
 * handler on the response. `close` also fires after a response finished normally; the handler
 * ignores it then.
 */
function onClientClose(this: TrackedResponse): void {
  this[kHandler]?.clientClosed()
}

/** The client's socket (or HTTP/2 stream) took what was written: the upstream may send on. */
function onClientDrain(this: TrackedResponse): void {
  this[kHandler]?.drained()
}

/** The first value of a (lower-case) field in a flat [name, value, …] header list. */
function fieldValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) return headers[i + 1]
  return undefined
}

/** Removes every content-length pair from a flat [name, value, …] header list. */
function withoutContentLength(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i].toLowerCase() === 'content-length') headers.splice(i, 2)
}

/** Removes a (lower-case) field from a flat [name, value, …] header list; returns its value when it had exactly one. */
function takeField(headers: string[], name: string): string | undefined {
  let value: string | undefined
  let lines = 0
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i].toLowerCase() !== name) continue
    value = headers[i + 1]
    lines++
    headers.splice(i, 2)
  }
  return lines === 1 ? value : undefined
}

/** RFC 6455 §4.2.2: the Sec-WebSocket-Accept that answers a Sec-WebSocket-Key. */
function acceptFor(key: string | string[] | undefined): string | undefined {
  return typeof key === 'string' ? createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64') : undefined
}

/** Thrown from onConnect for a request whose client left while it was queued (no stack needed). */
const CLIENT_GONE = Object.assign(new Error('client closed the connection'), { code: 'PORTCULLIS_CLIENT_GONE' })

/** Errors after which the request was certainly not sent: no connection was made. */
const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN'])

/**
 * Timeouts. Over HTTP/1.1, the handler times the upstream's answer itself, with one native timer
 * per request: `headersTimeoutMs` from the moment the request is handed to a connection
 * (onConnect) to the final head, then `bodyTimeoutMs` of silence between body chunks. undici's own timers for these
 * are turned off on such pools (forward/index.ts). undici keeps one timer per connection and
 * replaces it, rather than restarting it, whenever the next one has another length or kind: its
 * keep-alive timer before each request, the headers timer, then the body timer when the two
 * lengths differ (the defaults are 15 and 30 s). A replaced timer stays in its one-second timer
 * wheel until the next tick, so under load thousands of them outlive the requests, end up in
 * V8's old space, and its collections then showed in the tail of the equal-load benchmark
 * (docs/benchmarks.md). A native timer that is cleared is gone at once. What times out is
 * unchanged: the same errors (undici's HeadersTimeoutError, BodyTimeoutError) go through the same
 * path to a 504, and a body paused because the client reads slowly is not timed out (as undici
 * does not time out a paused parser).
 */
function onHeadersTimeout(handler: ForwardHandler): void {
  handler.timedOut(new errors.HeadersTimeoutError())
}

function onBodyTimeout(handler: ForwardHandler): void {
  handler.timedOut(new errors.BodyTimeoutError())
}

const enum State {
  Waiting,
  Streaming,
  Done,
}

/**
 * An undici dispatch handler (the callback-style API, the cheapest undici offers: no stream or
 * promise objects per request) that relays the upstream response into the client's response.
 * Backpressure: when the client socket is full, `onData` returns false, which pauses undici's
 * parser (and with it the upstream socket) until the client's `drain` calls undici's resume.
 */
export class ForwardHandler implements Dispatcher.DispatchHandler {
  private abort: ((err?: Error) => void) | undefined = undefined
  private resume: (() => void) | undefined = undefined
  private state = State.Waiting
  private clientGone = false
  private readonly startedAt = performance.now()
  /** When the first interim (1xx) answer came, if one did. */
  private interimAt = 0
  /** The running timeout of "Timeouts" above, over HTTP/1.1. */
  private timer: NodeJS.Timeout | undefined = undefined
  /** onData returned false: undici holds the upstream until the client drains. */
  private paused = false
  /** The answer's head, not written yet: over HTTP/1.1 until its first body byte or its end, over
   *  HTTP/2 only a gRPC Trailers-Only answer's, until the end (onHeaders says why). */
  private heldHead: string[] | undefined = undefined
  /** A gRPC-Web `-text` answer's body encoder. */
  private base64: Base64Encoder | undefined = undefined

  constructor(
    private readonly ctx: RequestContext,
    private readonly resolve: () => void,
    private readonly reject: (err: unknown) => void,
    private readonly logger: Logger,
    private readonly upstreamId: string,
    private readonly headersTimeoutMs: number,
    /** The upstream response fields not relayed (response-headers.ts); the built-in set when undefined. */
    private readonly dropFields?: ReadonlySet<string>,
    /** On a WebSocket handshake: how the tunnel a 101 opens is run. */
    private readonly tunnel?: (ctx: RequestContext) => TunnelOptions,
    /** Sends the request again (to an upstream with replicas, for a request without a body); used once. */
    private retry?: (handler: ForwardHandler) => void,
    /** A gRPC-Web call sent upstream as gRPC: its answer is translated back (grpc-web.ts). */
    private web?: GrpcWebMode,
    /** The request body, when it may feed an HTTP/2 stream: cut before undici closes that stream (body-limit.ts). */
    private readonly body?: UpstreamBody,
    /** Over HTTP/1.1: the body timeout, applied here with headersTimeoutMs ("Timeouts" above).
     *  Undefined over HTTP/2, where undici applies both. */
    private readonly bodyTimeoutMs?: number,
  ) {
    const res = ctx.res as TrackedResponse
    res[kHandler] = this
    // 'close' fires once per response: on() spares the once() wrapper.
    res.on('close', onClientClose)
    // Gone already (e.g. while an earlier stage awaited)? Then `close` will not fire again:
    // abort as soon as undici hands us the request, instead of waiting on a dead socket forever.
    if (res.destroyed) this.clientGone = true
  }

  onConnect(abort: (err?: Error) => void): void {
    // The client may have gone while the request waited for a pooled connection. abort() would
    // also destroy that connection, healthy and idle (undici cannot tell an abort before the
    // request was written from one after); an error thrown here instead fails just this request
    // (undici hands it to onError) and the connection serves the next one. Clients that give up
    // on a saturated upstream thus do not make the pool reconnect for each of them.
    if (this.clientGone) throw CLIENT_GONE
    this.abort = abort
    if (this.bodyTimeoutMs !== undefined && this.headersTimeoutMs > 0) {
      // Sent again to another target (replicas): its time starts over.
      if (this.timer !== undefined) clearTimeout(this.timer)
      this.timer = setTimeout(onHeadersTimeout, this.headersTimeoutMs, this).unref()
    }
  }

  /** A timeout of "Timeouts" above fired: the request fails as undici's own timer would fail it. */
  timedOut(err: Error): void {
    this.timer = undefined
    if (this.state === State.Done) return
    // A body paused for a client that reads slowly is waiting on the client, not the upstream.
    if (this.state === State.Streaming && this.paused) {
      this.timer = setTimeout(onBodyTimeout, this.bodyTimeoutMs!, this).unref()
      return
    }
    this.abort?.(err)
  }

  private stopTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // undici starts its headers timer again at each interim (1xx) answer: an upstream sending
    // 102 Processing forever would hold the request and a pooled connection for good. Every head
    // after the first interim one, interim or final, must come within headersTimeoutMs of it.
    if (this.interimAt !== 0 && performance.now() - this.interimAt > this.headersTimeoutMs) {
      this.abort?.(new errors.HeadersTimeoutError())
      return true
    }
    // 1xx are interim answers on the upstream hop only (node answers the client's 100-continue).
    if (statusCode < 200) {
      if (this.interimAt === 0) {
        this.interimAt = performance.now()
        // As undici does: the final head has headersTimeoutMs from the first interim one.
        this.timer?.refresh()
      }
      return true
    }
    this.stopTimer()
    const ctx = this.ctx
    ctx.upstreamMs = Math.round((performance.now() - this.startedAt) * 100) / 100
    ctx.status = statusCode
    // If writeHead throws (a header node refuses), undici aborts the request and onError answers 502.
    const headers = responseHeaders(rawHeaders, ctx.id, this.dropFields)
    // RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204; an upstream that does is
    // corrected here rather than passed on to clients that may wait for that many bytes.
    if (statusCode === 204) withoutContentLength(headers)
    const rl = rateLimitResponseHeaders(ctx)
    // RateLimit / RateLimit-Policy are list fields: ours go on lines of their own, next to any the
    // upstream sent (RFC 9110 §5.3: several field lines are one comma-joined list).
    if (rl !== undefined) headers.push('ratelimit-policy', rl['ratelimit-policy'], 'ratelimit', rl.ratelimit)
    // On a CORS route the gateway's CORS fields replace the upstream's (route/cors.ts).
    const cors = ctx.route?.cors
    if (cors !== undefined) {
      withoutUpstreamCors(headers)
      const fields = cors.fieldsFor(ctx.req.headers.origin)
      if (fields !== undefined) headers.push(...fields)
    }
    // A gRPC-Web answer: its own Content-Type, no Content-Length (a trailer frame is added at the end).
    const web = this.web
    // (Only a gRPC answer, Content-Type application/grpc or application/grpc+…, is translated.)
    if (web !== undefined && isGrpcRequest(fieldValue(headers, 'content-type'))) {
      takeField(headers, 'content-type')
      withoutContentLength(headers)
      headers.push('content-type', clientContentType(web))
      if (web.text) this.base64 = new Base64Encoder()
    } else if (web !== undefined) this.web = undefined
    // A gRPC answer with its status in the head is Trailers-Only (gRPC over HTTP/2: an error without
    // messages). An HTTP/2 client reads the status there only from a HEADERS frame that ends the
    // stream, which node's compatibility API sends when the response ends before its head was
    // written: the head waits for the end (or for a body, which such an answer does not have).
    // (A gRPC-Web client reads it from any head.)
    if (ctx.http2 && this.web === undefined && fieldValue(headers, 'grpc-status') !== undefined) {
      this.heldHead = headers
      ctx.res.statusCode = statusCode
      this.state = State.Streaming
      this.resume = resume
      return true
    }
    if (ctx.http2) ctx.res.writeHead(statusCode, headers)
    else {
      // Over HTTP/1.1 node sends a head with the first body bytes or the end, not before: it is
      // held here until then, so an upstream that fails before its first body byte (a broken
      // chunk, a connection closed) still gets the client a 502 instead of a cut connection.
      this.heldHead = headers
      ctx.res.statusCode = statusCode
    }
    // 204, 304 and answers to HEAD have no body, whatever their Content-Length says (RFC 9110
    // §6.4.1): the response is complete now. On a 204/304 undici still holds that Content-Length
    // against the zero bytes it read and fails the request afterwards; onError ignores it once Done.
    if (statusCode === 204 || statusCode === 304 || ctx.method === 'HEAD') {
      this.finish()
      return true
    }
    this.state = State.Streaming
    this.resume = resume
    const bodyMs = this.bodyTimeoutMs
    if (bodyMs !== undefined && bodyMs > 0) this.timer = setTimeout(onBodyTimeout, bodyMs, this).unref()
    return true
  }

  /**
   * The upstream accepted a WebSocket handshake (101): its answer goes to the client, then the two
   * connections become one tunnel. Only reached for a request sent with undici's `upgrade`, which
   * the forward stage sets on a handshake through a `websocket: true` route; any other answer to
   * it is relayed by onHeaders like an ordinary response.
   */
  onUpgrade(statusCode: number, rawHeaders: Buffer[], socket: Socket): void {
    this.stopTimer()
    if (this.state === State.Done) return void socket.destroy()
    this.state = State.Done
    const ctx = this.ctx
    if (this.clientGone || this.tunnel === undefined || ctx.upgradeHead === undefined) {
      socket.destroy()
      ctx.status = 499
      this.resolve()
      return
    }
    ctx.upstreamMs = Math.round((performance.now() - this.startedAt) * 100) / 100
    const http2 = ctx.http2
    try {
      const headers = responseHeaders(rawHeaders, ctx.id, this.dropFields)
      // A 101 has no content (RFC 9110 §15.2.2); the connection's own fields are ours to say.
      withoutContentLength(headers)
      if (http2) {
        // RFC 8441 §5: the gateway was the handshake's client towards the upstream, so it checks
        // the answer to its key; the HTTP/2 client is told 200, without the HTTP/1.1 fields.
        const accept = takeField(headers, 'sec-websocket-accept')
        if (accept !== acceptFor(ctx.upstreamHeaders['sec-websocket-key'])) throw new GatewayError('ERR_FORWARD_UNAVAILABLE', { reason: 'invalid_response' })
        ctx.res.writeHead(200, headers)
      } else {
        headers.push('connection', 'upgrade', 'upgrade', 'websocket')
        ctx.res.writeHead(statusCode, headers)
      }
      ctx.res.flushHeaders()
    } catch (err) {
      // A header node refuses to write: nothing was sent yet, so the client gets a 502.
      socket.destroy()
      this.logger.warn({ requestId: ctx.id, upstream: this.upstreamId, err: (err as Error).message }, 'upstream upgrade answer refused')
      this.reject(err instanceof GatewayError ? err : mapUpstreamError(err as Error, false).error)
      return
    }
    ctx.status = http2 ? 200 : statusCode
    openTunnel(http2 ? (ctx.req as unknown as Http2ServerRequest).stream : ctx.req.socket, socket, ctx.upgradeHead, this.tunnel(ctx))
    this.resolve()
  }

  onData(chunk: Buffer): boolean {
    // A bodiless answer (204, 304, HEAD) is complete already: a body the parser still hands over
    // is dropped, never written after end (which would emit an unhandled 'error' on the response).
    if (this.state === State.Done) return true
    this.timer?.refresh()
    const res = this.ctx.res
    if (this.heldHead !== undefined) {
      res.writeHead(res.statusCode, this.heldHead)
      this.heldHead = undefined
    }
    if (this.base64 !== undefined ? res.write(this.base64.push(chunk), 'latin1') : res.write(chunk)) return true
    this.paused = true
    res.once('drain', onClientDrain)
    return false
  }

  /** The client caught up (onClientDrain): undici reads the upstream again. */
  drained(): void {
    this.paused = false
    this.resume?.()
  }

  onComplete(trailers?: Array<Buffer | string> | Record<string, string | string[] | undefined> | null): void {
    if (this.state === State.Done) return
    // The upstream's trailers (a gRPC answer's status) go on to an HTTP/2 client, which takes them
    // after the body as it comes. An HTTP/1.1 client gets none: node would need them declared
    // (Trailer) before a chunked body, and the gateway does not know them yet.
    if (this.web !== undefined) {
      // gRPC-Web: the trailers (the call's status) become the body's last frame; a base64 body ends
      // with its last, padded group.
      const fields = trailers == null ? undefined : trailerFields(trailers, this.dropFields)
      const frame = fields === undefined ? undefined : trailerFrame(fields)
      if (this.base64 !== undefined) this.ctx.res.write((frame === undefined ? '' : this.base64.push(frame)) + this.base64.end(), 'latin1')
      else if (frame !== undefined) this.ctx.res.write(frame)
    } else if (trailers != null && this.ctx.http2) {
      const fields = trailerFields(trailers, this.dropFields)
      if (fields !== undefined) this.ctx.res.addTrailers(fields as Record<string, string>)
    }
    this.finish()
  }

  private finish(): void {
    this.state = State.Done
    this.stopTimer()
    const req = this.ctx.req
    // The upstream answered in full before the client finished sending its body (an early 401 or
    // 413): undici stops sending it and destroys the request stream, after which node would stop
    // reading the connection, so the client's next request on it would never be answered. Discard
    // the rest instead, as node does with a body nobody read, and the connection stays in step.
    // (A WebSocket handshake has no body, and its connection closes after this answer.)
    if (!req.complete && this.ctx.upgradeHead === undefined) (req as DumpableRequest)._dump()
    const held = this.heldHead
    if (held !== undefined) {
      // HTTP/2 (a gRPC Trailers-Only answer): set, not written, so end() sends the head as the
      // stream's last frame.
      if (this.ctx.http2) for (let i = 0; i < held.length; i += 2) this.ctx.res.appendHeader(held[i], held[i + 1])
      else this.ctx.res.writeHead(this.ctx.res.statusCode, held)
      this.heldHead = undefined
    }
    this.ctx.res.end()
    // A WebSocket over HTTP/2 that the upstream answered without a 101: its stream is over, the
    // client's side too (what it would send is tunnel bytes).
    if (this.ctx.http2 && this.ctx.upgradeHead !== undefined) endStream((req as unknown as Http2ServerRequest).stream)
    this.resolve()
  }

  onError(err: Error): void {
    // undici calls this before it closes the upstream stream: the body's HTTP/2 stream is ended as
    // failed first, never as complete (body-limit.ts says why).
    this.body?.cut(err)
    this.stopTimer()
    // The client already has a complete bodiless response (onHeaders); undici only objects to
    // its Content-Length, which described the representation, not a body.
    if (this.state === State.Done) return
    // No connection to the target it was given: nothing was sent, so the request goes to the next
    // target of a replicated upstream, once.
    const retry = this.retry
    if (retry !== undefined && this.state === State.Waiting && !this.clientGone && CONNECT_FAILURES.has((err as { code?: string }).code ?? '')) {
      this.retry = undefined
      this.abort = undefined
      this.logger.debug({ requestId: this.ctx.id, upstream: this.upstreamId, code: (err as { code?: string }).code }, 'upstream connection failed; trying the next target')
      retry(this)
      return
    }
    const wasStreaming = this.state === State.Streaming
    this.state = State.Done
    const ctx = this.ctx
    if (this.clientGone) {
      // The client hung up and we aborted the upstream request: nobody is left to answer.
      // 499 is the de-facto "client closed request" status of access logs (nginx).
      ctx.status = 499
      this.resolve()
      return
    }
    const headersSent = ctx.res.headersSent
    const { error, known } = mapUpstreamError(err, headersSent)
    const code = (err as { code?: unknown }).code
    if (known) this.logger.debug({ requestId: ctx.id, upstream: this.upstreamId, code, reason: error.reason }, 'upstream request failed')
    else this.logger.warn({ requestId: ctx.id, upstream: this.upstreamId, code, err: err.message }, 'upstream request failed')
    // After the status line went out the only honest signal left is to cut the client connection
    // (a truncated body must not look complete); the runner does the same on headersSent. A head
    // still held (HTTP/1.1, no body byte yet) was never sent: the client gets the 502.
    if (headersSent || (wasStreaming && ctx.http2)) ctx.res.destroy()
    this.reject(error)
  }

  /** The client connection closed. Before the response finished, that aborts the upstream request. */
  clientClosed(): void {
    if (this.state === State.Done) return
    this.clientGone = true
    // (undici's abort calls onError, which cuts the body's HTTP/2 stream, before it closes it.)
    const abort = this.abort
    if (abort !== undefined) abort()
  }
}
