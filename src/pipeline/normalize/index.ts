import type { Config } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, RequestContext, Stage } from '../stage.js'
import { checkQuery, createPathCanonicalizer, DEFAULT_MAX_PATH_LENGTH, isRejection, REJECTIONS, type Rejection } from './canonical-path.js'
import { createRouteAmbiguityCheck } from './route-ambiguity.js'

function refuse(r: Rejection): GatewayError {
  return new GatewayError('ERR_NORMALIZE_REJECTED', { reason: r.reason, detail: r.detail })
}

/**
 * First stage: turns the raw request-target into ctx.path (the one canonical path, see
 * canonical-path.ts and docs/normalize.md) and ctx.query (the raw query with its "?", or "").
 * Route matches ctx.path and forward sends ctx.path + ctx.query, so the path that was authorized
 * is byte for byte the path the upstream receives.
 */
export function createNormalizeStage(config: Config, _deps: Deps) {
  const canonicalize = createPathCanonicalizer({ maxLength: DEFAULT_MAX_PATH_LENGTH })
  const isUnambiguous = createRouteAmbiguityCheck(config.routes)
  return {
    name: 'normalize',
    onRequest(ctx: RequestContext): void {
      // node:http gives the request-target as sent: origin-form "/p?q", or absolute-form
      // "http://h/p" and asterisk-form "*", which a gateway has no use for (RFC 9112 §3.2).
      const target = ctx.req.url ?? ''
      const q = target.indexOf('?')
      const path = canonicalize(target, q === -1 ? target.length : q)
      if (isRejection(path)) throw refuse(path)
      if (q === -1) {
        ctx.query = ''
      } else {
        const bad = checkQuery(target, q)
        if (bad) throw refuse(bad)
        ctx.query = target.slice(q)
      }
      if (!isUnambiguous(path, ctx.method, ctx.req.headers.host)) throw refuse(REJECTIONS.route_ambiguous)
      ctx.path = path
    },
  } satisfies Stage
}
