import { GatewayError } from '../../errors/gateway-error.js'
import type { Config } from '../../config/schema.js'
import { ANSWERED, type RequestContext, type Stage } from '../stage.js'
import { isPreflight } from './cors.js'
import { compileRoute, Router } from './router.js'

/** Matches the Host, the canonical path and the method against the routes compiled at load. */
export function createRouteStage(config: Config) {
  const router = new Router(config.routes.map((r, i) => compileRoute(r, i)))
  const anyCors = router.routes.some((r) => r.cors !== undefined)
  return {
    name: 'route',
    onRequest(ctx: RequestContext): void | typeof ANSWERED {
      // A CORS preflight asks about the method it names, not about OPTIONS: on a route with a
      // `cors` section the gateway answers it here, before any credential is asked for (a
      // preflight carries none) and without the upstream (cors.ts).
      if (anyCors && isPreflight(ctx.method, ctx.req.headers)) {
        const headers = ctx.req.headers
        const asked = router.match(ctx.path, headers['access-control-request-method']!, headers.host)
        if (asked.kind === 'match' && asked.route.cors !== undefined) {
          ctx.route = asked.route
          const fields = asked.route.cors.preflight(headers.origin!, headers)
          ctx.status = 204
          ctx.res.writeHead(204, { ...fields, 'x-request-id': ctx.id }).end()
          return ANSWERED
        }
      }
      const m = router.match(ctx.path, ctx.method, ctx.req.headers.host)
      if (m.kind === 'match') {
        ctx.route = m.route
        // A WebSocket handshake opens a connection that outlives the request: only where the route says so.
        if (ctx.upgradeHead !== undefined && !m.route.websocket) throw new GatewayError('ERR_ROUTE_WEBSOCKET_NOT_ALLOWED', { reason: 'websocket' })
        return
      }
      if (m.kind === 'method') {
        // The path is a route's, the method is not: the event and the access line name the route
        // (the first one on this path), which is what an investigator looks for. No later stage runs.
        ctx.route = m.route
        throw new GatewayError('ERR_ROUTE_METHOD_NOT_ALLOWED', { headers: { allow: m.allow }, reason: 'method' })
      }
      // Unknown route: answered here, before authentication and without touching any upstream.
      throw new GatewayError('ERR_ROUTE_NOT_FOUND', { reason: 'no_route' })
    },
  } satisfies Stage
}
