import { GatewayError } from '../../errors/gateway-error.js'
import type { Config } from '../../config/schema.js'
import type { RequestContext, Stage } from '../stage.js'
import { compileRoute, Router } from './router.js'

/** Matches the canonical path and method against the routes compiled at load. */
export function createRouteStage(config: Config) {
  const router = new Router(config.routes.map((r, i) => compileRoute(r, i)))
  return {
    name: 'route',
    onRequest(ctx: RequestContext): void {
      const m = router.match(ctx.path, ctx.method)
      if (m.kind === 'match') {
        ctx.route = m.route
        // A WebSocket handshake opens a connection that outlives the request: only where the route says so.
        if (ctx.upgradeHead !== undefined && !m.route.websocket) throw new GatewayError('ERR_ROUTE_WEBSOCKET_NOT_ALLOWED', { reason: 'websocket' })
        return
      }
      if (m.kind === 'method') {
        throw new GatewayError('ERR_ROUTE_METHOD_NOT_ALLOWED', { headers: { allow: m.allow }, reason: 'method' })
      }
      // Unknown route: answered here, before authentication and without touching any upstream.
      throw new GatewayError('ERR_ROUTE_NOT_FOUND', { reason: 'no_route' })
    },
  } satisfies Stage
}
