import { hasBody } from './sanitize/framing.js'
import { GatewayError, isGatewayError } from '../errors/gateway-error.js'
import { catalog, type ErrorCode } from '../errors/catalog.js'
import { toProblem } from '../errors/problem.js'
import { grpcRefusalHeaders, isGrpcRequest } from '../errors/grpc.js'
import { clientContentType, grpcWebModeOf } from './forward/grpc-web.js'
import type { DenialEventType, RequestEvent } from '../events/event.js'
import { loggedPath } from '../events/logged-path.js'
import { bearerHint, loggedDigest, presented } from './authn/presented.js'
import { peerCertificateOf } from '../http/peer-certificate.js'
import { endStream, type GatewayHttp2Request } from '../http/http2.js'
import { ANSWERED, type Deps, type RequestContext, type Stage } from './stage.js'

export interface Pipeline {
  /** Runs every stage for one request. Never throws; always answers the client exactly once. */
  handle(ctx: RequestContext): void
  /**
   * The listener found the request's own message broken after the pipeline had it: its body cut
   * short, malformed, or not complete in time. Answers and records it as this request's refusal
   * (its id, route and identity so far), once; whatever stage is still running then finds the
   * request over (an upstream request in flight is aborted as the connection closes).
   */
  interrupt(ctx: RequestContext, err: GatewayError): void
  readonly stages: readonly Stage[]
}

export interface PipelineOptions {
  readonly realm: string
  /** Called once per request when it is over (access log, metrics). */
  readonly onDone?: (ctx: RequestContext) => void
  /** Called for every refused request, before its event (brute-force accounting). */
  readonly onDenied?: (ctx: RequestContext, code: ErrorCode) => void
  /**
   * Event sampling: a negative result drops the event; otherwise it is the number of events of
   * this kind suppressed since the last one written (added to the event as `suppressed`).
   */
  readonly sampleEvent?: (ctx: RequestContext, code: ErrorCode) => number
}

/**
 * The only loop over stages. Synchronous stages stay synchronous: the runner only awaits when a
 * stage actually returns a promise, so a warm request does not pay for a chain of microtasks.
 * It catches once: a GatewayError becomes one problem+json response and one security event;
 * anything else becomes ERR_INTERNAL, logged with its stack and never shown to the client.
 */
export function createPipeline(stages: readonly Stage[], deps: Deps, options: PipelineOptions): Pipeline {
  const count = stages.length
  const { realm, onDone, onDenied, sampleEvent } = options

  function fail(ctx: RequestContext, err: unknown): void {
    if (ctx.over) return
    let gerr: GatewayError
    if (isGatewayError(err)) {
      gerr = err
    } else {
      deps.logger.error({ err, requestId: ctx.id }, 'unhandled error in pipeline')
      gerr = new GatewayError('ERR_INTERNAL', { reason: 'exception' })
    }
    ctx.status = gerr.status
    if (onDenied) {
      try {
        onDenied(ctx, gerr.code)
      } catch (err) {
        deps.logger.error({ err }, 'onDenied failed')
      }
    }
    const suppressed = sampleEvent ? sampleEvent(ctx, gerr.code) : 0
    if (suppressed >= 0) emitDenial(ctx, gerr, suppressed)
    const res = ctx.res
    if (res.headersSent) {
      // The upstream response had started: the only honest signal left is to cut the connection.
      res.destroy()
    } else if (!res.writableEnded) {
      const problem = toProblem(gerr, ctx.id, realm)
      const req = ctx.req
      // Only a request with a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding) can have
      // one still arriving; every other refusal keeps the connection alive.
      const unread = hasBody(req.headers) && !req.complete
      if (unread) {
        // Refused before its body was read to the end: close the connection after this answer,
        // since its framing can no longer be trusted to be in step; read (and discard) what is
        // left so the client can finish sending and see the answer (closing with unread data
        // would reset the connection). HTTP/2 has no Connection field: the stream alone is
        // ended after the answer (below), which tells the client to stop sending.
        if (!ctx.http2) problem.headers.connection = 'close'
        if (!req.destroyed) req.resume()
      }
      // On a CORS route a page of an allowed origin may read the refusal (route/cors.ts).
      const cors = ctx.route?.cors?.fieldsFor(req.headers.origin)
      // (A gRPC-Web call, on a route that translates them, gets its own Content-Type back.)
      const web = ctx.route?.grpcWeb ? grpcWebModeOf(req.headers['content-type']) : undefined
      if ((ctx.http2 && isGrpcRequest(req.headers['content-type'])) || web !== undefined) {
        // A gRPC call gets its refusal as gRPC status (errors/grpc.ts): set, not written, so that
        // end() sends the head as the one frame of the answer, which ends the stream. A browser's
        // gRPC-Web client reads the status only where CORS lets it.
        const headers = grpcRefusalHeaders(problem, gerr.code, web === undefined ? undefined : clientContentType(web))
        if (web !== undefined && cors !== undefined) for (let i = 0; i < cors.length; i += 2) headers[cors[i]] = cors[i + 1]
        for (const name in headers) res.setHeader(name, headers[name])
        res.statusCode = 200
        res.end()
      } else {
        if (cors !== undefined) for (let i = 0; i < cors.length; i += 2) problem.headers[cors[i]] = cors[i + 1]
        res.writeHead(problem.status, problem.headers)
        res.end(ctx.method === 'HEAD' ? undefined : problem.body)
      }
      // (A refused WebSocket over HTTP/2 is ended too: its stream's DATA would be tunnel bytes.)
      if ((unread || ctx.upgradeHead !== undefined) && ctx.http2) endStream((req as unknown as GatewayHttp2Request).stream)
    }
    done(ctx)
  }

  function emitDenial(ctx: RequestContext, err: GatewayError, suppressed: number): void {
    const id = ctx.identity ?? ctx.refusedToken
    const event: RequestEvent = {
      type: catalog[err.code].event as DenialEventType,
      time: new Date(deps.now()).toISOString(),
      requestId: ctx.id,
      traceId: ctx.traceId,
      clientIp: ctx.clientIp,
      method: ctx.method,
      path: loggedPath(ctx),
      route: ctx.route?.id,
      decision: err.status >= 500 ? 'error' : 'deny',
      code: err.code,
      status: err.status,
      reason: err.reason,
      subject: id?.subject,
      clientId: id?.clientId,
      issuer: id?.issuer,
      jti: id?.jti,
      tokenDigest: ctx.identity?.tokenDigest ?? ctx.tokenDigest ?? presentedDigest(ctx),
      ...(ctx.route?.auth === 'certificate' ? { certificate: peerCertificateOf(ctx.req)?.thumbprint } : undefined),
      ...(suppressed > 0 ? { suppressed } : undefined),
    }
    deps.events.emit(event)
  }

  /**
   * The digest of the bearer token a request refused before authn looked at it presented (a 429
   * of a limit or of brute-force protection, a 404): computed here, only for an event written.
   */
  function presentedDigest(ctx: RequestContext): string | undefined {
    const token = bearerHint(ctx.req.headers.authorization)
    return token === undefined ? undefined : loggedDigest(presented(ctx, token))
  }

  function done(ctx: RequestContext): void {
    if (ctx.over) return
    ctx.over = true
    if (onDone) {
      try {
        onDone(ctx)
      } catch (err) {
        deps.logger.error({ err }, 'onDone failed')
      }
    }
  }

  function runFrom(ctx: RequestContext, start: number): void {
    let i = start
    try {
      for (; i < count; i++) {
        const result = stages[i].onRequest(ctx)
        if (result === ANSWERED) break
        if (result !== undefined) {
          const next = i + 1
          result.then(
            () => (ctx.over ? undefined : next < count ? runFrom(ctx, next) : finish(ctx)),
            (err: unknown) => fail(ctx, err),
          )
          return
        }
      }
    } catch (err) {
      fail(ctx, err)
      return
    }
    finish(ctx)
  }

  /** Invariant: the last stage answers the client. A pipeline that did not is a bug, not a 200. */
  function finish(ctx: RequestContext): void {
    // A client that hung up before the response started is not a bug (forward records it as 499).
    if (!ctx.res.headersSent && !ctx.res.destroyed) {
      fail(ctx, new Error('pipeline ended without a response'))
      return
    }
    done(ctx)
  }

  return {
    stages,
    handle(ctx) {
      runFrom(ctx, 0)
    },
    interrupt: fail,
  }
}
