// PLACEHOLDER: to be replaced by the real canonical-path stage.
import type { Config } from '../../config/schema.js'
import type { Deps, RequestContext, Stage } from '../stage.js'

export function createNormalizeStage(_config: Config, _deps: Deps) {
  return {
    name: 'normalize',
    onRequest(ctx: RequestContext): void {
      const url = ctx.req.url ?? '/'
      const q = url.indexOf('?')
      ctx.path = q === -1 ? url : url.slice(0, q)
      ctx.query = q === -1 ? '' : url.slice(q)
    },
  } satisfies Stage
}
