import { hasBody } from '../sanitize/framing.js'
import { guardHttp2Sessions } from './h2-session-guard.js'
import { randomBytes } from 'node:crypto'
import { upstreamBody, UpstreamBody } from './body-limit.js'
import type { IncomingMessage } from 'node:http'
import { BalancedPool, Pool, type Dispatcher } from 'undici'
import type { Config, UpstreamConfig } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, RequestContext, Stage } from '../stage.js'
import { ForwardHandler } from './handler.js'
import { Base64Decoder, grpcWebModeOf, upstreamContentType } from './grpc-web.js'
import { createIdentityHeaderWriter } from './identity-headers.js'
import { basePathOf, upstreamPath } from './upstream-path.js'
import type { TunnelCloseReason, TunnelOptions } from './tunnel.js'
import { monitorHealth, type HealthChange, type HealthMonitor } from './health.js'
import { droppedResponseFields } from './response-headers.js'

export interface ForwardStage extends Stage {
  close(): Promise<void>
}

export interface ForwardOptions {
  /**
   * The Authorization value to send instead of the caller's, or undefined to leave it as sanitize
   * and identity.forwardAuthorization made it. Internal tokens (src/tokens/) supply it.
   */
  readonly upstreamAuthorization?: (ctx: RequestContext) => string | undefined
  /** A WebSocket tunnel opened (metrics). */
  readonly tunnelOpened?: () => void
  /** A WebSocket tunnel closed, and why (metrics). */
  readonly tunnelClosed?: (reason: TunnelCloseReason) => void
  /** A health-checked target turned healthy or unhealthy (metrics). */
  readonly targetHealth?: (change: HealthChange) => void
}

/** One upstream, prepared at config load. */
interface Target {
  readonly id: string
  readonly pool: Pool | BalancedPool
  /** More than one base URL (`replicas`): a refused connection may be tried on the next. */
  readonly replicated: boolean
  /** Active health checks (`healthCheck`), when configured. */
  readonly health: HealthMonitor | undefined
  /** The upstream URL's path ("" or "/base"), prepended to every request path. */
  readonly prefix: string
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  /** Reached over HTTP/2: request bodies go as an UpstreamBody, which can cut its stream (body-limit.ts). */
  readonly http2: boolean
}

/**
 * TLS options of an https:// upstream's connections: its own CAs in place of the system store, the
 * gateway's client certificate (mutual TLS), the name to send and check. undici verifies the
 * upstream's certificate and name in every case; nothing here turns that off.
 */
function tlsOptionsOf(u: UpstreamConfig): Record<string, unknown> | undefined {
  const tls = u.tls
  if (tls === undefined) return undefined
  return {
    minVersion: tls.minVersion,
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
  }
}

function createTarget(u: UpstreamConfig, onHealth: (change: HealthChange) => void): Target {
  const url = new URL(u.url)
  // HTTP/2: negotiated by ALPN on https:// (allowH2), by prior knowledge (h2c) on http://. undici's
  // Pool reads useH2c from its connect options only (it builds the connector itself).
  const h2c = u.http2 && url.protocol === 'http:'
  if (u.http2) guardHttp2Sessions()
  const tls = h2c ? { ...tlsOptionsOf(u), useH2c: true } : tlsOptionsOf(u)
  const options = {
    ...(tls === undefined ? {} : { connect: tls }),
    ...(u.http2 && !h2c ? { allowH2: true } : {}),
    connections: u.connections,
    connectTimeout: u.connectTimeoutMs,
    // Over HTTP/1.1 the handler times the answer itself (handler.ts, "Timeouts"), so undici's own
    // timers are off there. HTTP/2 streams keep undici's (a native timer per stream).
    headersTimeout: u.http2 ? u.headersTimeoutMs : 0,
    bodyTimeout: u.http2 ? u.bodyTimeoutMs : 0,
    keepAliveTimeout: u.keepAliveTimeoutMs,
    // A Keep-Alive hint from the upstream may shorten the idle time, never lengthen it past config.
    keepAliveMaxTimeout: u.keepAliveTimeoutMs,
  }
  // One pool per target, each with these options; BalancedPool picks among them by weighted round
  // robin and lowers the weight of a target whose connections fail.
  const replicated = u.replicas !== undefined
  const origins = [url.origin, ...(u.replicas ?? []).map((r) => new URL(r).origin)]
  const pool = replicated ? new BalancedPool(origins, options) : new Pool(url.origin, options)
  const health = u.healthCheck === undefined ? undefined : monitorHealth(u, origins, pool, tls, onHealth)
  return { id: u.id, pool, replicated, health, prefix: basePathOf(url), headersTimeoutMs: u.headersTimeoutMs, bodyTimeoutMs: u.bodyTimeoutMs, http2: u.http2 === true }
}

/** How long closing waits for queued upstream requests before destroying the pools. */
const POOL_CLOSE_GRACE_MS = 2000

/**
 * The last stage: sends the request to the route's upstream over a keep-alive undici Pool and
 * streams the answer back. Its promise resolves once the last byte is handed to the client
 * socket, or rejects with ERR_FORWARD_UNAVAILABLE (502) / ERR_FORWARD_TIMEOUT (504).
 */

export function createForwardStage(config: Config, deps: Deps, options: ForwardOptions = {}): ForwardStage {
  const targets = new Map<string, Target>()
  const onHealth = (change: HealthChange): void => {
    options.targetHealth?.(change)
    deps.events.emit({ type: change.healthy ? 'upstream.healthy' : 'upstream.unhealthy', time: new Date(deps.now()).toISOString(), ...change })
  }
  for (const u of config.upstreams) targets.set(u.id, createTarget(u, onHealth))
  const writeIdentity = createIdentityHeaderWriter(config.identity.headers)
  const dropAuthorization = !config.identity.forwardAuthorization
  const upstreamAuthorization = options.upstreamAuthorization
  const logger = deps.logger
  const maxBodyBytes = config.server.maxBodyBytes
  const dropFields = droppedResponseFields(config.responses.stripHeaders)
  const idleTimeoutMs = config.server.websocketIdleTimeoutMs
  // How a tunnel opened by a WebSocket handshake runs, and what its end records (websocket.closed).
  const { tunnelOpened, tunnelClosed } = options
  const tunnel = (ctx: RequestContext): TunnelOptions => ({
    idleTimeoutMs,
    onOpened: tunnelOpened,
    closeAt: ctx.identity?.expiresAt,
    now: deps.now,
    onClosed: (closed) => {
      tunnelClosed?.(closed.reason)
      deps.events.emit({
        type: 'websocket.closed',
        time: new Date(deps.now()).toISOString(),
        requestId: ctx.id,
        traceId: ctx.traceId,
        clientIp: ctx.clientIp,
        route: ctx.route?.id,
        subject: ctx.identity?.subject,
        clientId: ctx.identity?.clientId,
        ...closed,
      })
    },
  })

  return {
    name: 'forward',
    onRequest(ctx: RequestContext): Promise<void> {
      const route = ctx.route
      const target = route && targets.get(route.upstreamId)
      // Unreachable with a validated config (routes name known upstreams); fail closed anyway.
      if (route === undefined || target === undefined) throw new GatewayError('ERR_INTERNAL', { reason: 'unknown_upstream' })
      const headers = ctx.upstreamHeaders
      if (ctx.identity !== undefined) writeIdentity(headers, ctx.identity)
      if (dropAuthorization) delete headers.authorization
      if (upstreamAuthorization !== undefined) {
        // On an internal-token route the caller's token never reaches the service: the gateway's replaces it.
        const authorization = upstreamAuthorization(ctx)
        if (authorization !== undefined) headers.authorization = authorization
      }
      const req = ctx.req
      // A WebSocket handshake (the route stage let only `websocket: true` routes have one): undici
      // sends it with Connection: upgrade and Upgrade: websocket on a connection of its own, and
      // hands the socket over on a 101 (ForwardHandler.onUpgrade).
      const handshake = ctx.upgradeHead !== undefined
      // Over HTTP/2 (RFC 8441) the client sends no key: the gateway makes the HTTP/1.1 handshake's
      // own, and checks the upstream's answer to it (ForwardHandler.onUpgrade).
      if (handshake && ctx.http2) headers['sec-websocket-key'] = randomBytes(16).toString('base64')
      // A gRPC-Web call on a route that translates it goes upstream as gRPC (grpc-web.ts): the same
      // messages, as they are or decoded from base64.
      const web = route.grpcWeb ? grpcWebModeOf(req.headers['content-type']) : undefined
      if (web !== undefined) {
        headers['content-type'] = upstreamContentType(web)
        headers.te = 'trailers'
      }
      // A chunked body is counted on the way (its size was not declared, so sanitize could not
      // check it); a -text call's is decoded; one bound for an HTTP/2 upstream must be cuttable
      // there (body-limit.ts). Any other goes as the client's request itself.
      const limit = maxBodyBytes > 0 && req.headers['transfer-encoding'] !== undefined ? maxBodyBytes : 0
      const decoder = web?.text ? new Base64Decoder() : undefined
      const body =
        handshake || !hasBody(req.headers) ? null : limit > 0 || decoder !== undefined || target.http2 ? upstreamBody(req, limit, decoder) : req
      // A decoded body's length is not the one the client declared.
      if (decoder !== undefined && body !== null) delete headers['content-length']
      const opts: Dispatcher.DispatchOptions = {
        path: upstreamPath(target.prefix, ctx.path, route.stripPrefix, ctx.query),
        method: ctx.method as Dispatcher.DispatchOptions['method'],
        headers,
        // Streamed, never buffered: undici reads the client's request as it arrives.
        body,
        upgrade: handshake ? 'websocket' : undefined,
        // The route's own timeouts (upstreamTimeouts) over HTTP/2; undefined leaves the pool's.
        // Over HTTP/1.1 the handler applies them.
        ...(target.http2 ? { headersTimeout: route.headersTimeoutMs, bodyTimeout: route.bodyTimeoutMs } : {}),
      }
      const headersTimeoutMs = route.headersTimeoutMs ?? target.headersTimeoutMs
      const bodyTimeoutMs = target.http2 ? undefined : (route.bodyTimeoutMs ?? target.bodyTimeoutMs)
      return new Promise<void>((resolve, reject) => {
        // Only a request without a body may be sent again: a body already read cannot be.
        const retry = target.replicated && opts.body === null ? (h: ForwardHandler) => target.pool.dispatch(opts, h) : undefined
        const cuttable = body instanceof UpstreamBody ? body : undefined
        target.pool.dispatch(opts, new ForwardHandler(ctx, resolve, reject, logger, target.id, headersTimeoutMs, dropFields, handshake ? tunnel : undefined, retry, web, cuttable, bodyTimeoutMs))
      })
    },
    async close(): Promise<void> {
      // close() waits for queued requests; one stuck on an upstream that never answers must not
      // hold the shutdown: past the grace period the pools are destroyed.
      await Promise.allSettled([...targets.values()].map((t) => t.health?.close()))
      await Promise.allSettled(
        [...targets.values()].map((t) =>
          Promise.race([t.pool.close(), new Promise<void>((r) => setTimeout(r, POOL_CLOSE_GRACE_MS).unref())]).then(() =>
            // `closed` turns true as soon as close() is called; a close that finished has also
            // destroyed the pool, so `destroyed` tells whether the grace period ran out first.
            t.pool.destroyed ? undefined : t.pool.destroy(),
          ),
        ),
      )
    },
  }
}
