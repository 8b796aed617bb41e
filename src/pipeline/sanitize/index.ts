// PLACEHOLDER: to be replaced by the real header sanitizer.
import type { Config } from '../../config/schema.js'
import type { ClientAddressResolver } from '../../http/client-address.js'
import type { Deps, RequestContext, Stage } from '../stage.js'

export function createSanitizeStage(_config: Config, _deps: Deps, _resolver: ClientAddressResolver) {
  return {
    name: 'sanitize',
    onRequest(ctx: RequestContext): void {
      const h: Record<string, string | string[]> = {}
      for (const [k, v] of Object.entries(ctx.req.headers)) if (v !== undefined && k !== 'connection' && k !== 'host') h[k] = v
      h['x-request-id'] = ctx.id
      h['traceparent'] = ctx.traceparent
      ctx.upstreamHeaders = h
    },
  } satisfies Stage
}
