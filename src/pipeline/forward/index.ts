// PLACEHOLDER: to be replaced by the real forwarding stage.
import { Pool } from 'undici'
import type { Config } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, RequestContext, Stage } from '../stage.js'

export interface ForwardStage extends Stage {
  close(): Promise<void>
}

export function createForwardStage(config: Config, _deps: Deps): ForwardStage {
  const pools = new Map(config.upstreams.map((u) => [u.id, new Pool(u.url, { connections: u.connections })]))
  return {
    name: 'forward',
    async onRequest(ctx: RequestContext): Promise<void> {
      const pool = pools.get(ctx.route!.upstreamId)!
      try {
        const r = await pool.request({ method: ctx.method as 'GET', path: ctx.path + ctx.query, headers: ctx.upstreamHeaders, body: ctx.req })
        ctx.res.writeHead(r.statusCode, r.headers as Record<string, string>)
        for await (const chunk of r.body) ctx.res.write(chunk)
        ctx.res.end()
      } catch (err) {
        throw new GatewayError('ERR_FORWARD_UNAVAILABLE', { cause: err })
      }
    },
    close: async () => {
      await Promise.all([...pools.values()].map((p) => p.close()))
    },
  }
}
