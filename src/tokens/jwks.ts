import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '../errors/gateway-error.js'
import { toProblem } from '../errors/problem.js'
import { resolveRequestId } from '../http/request-id.js'
import type { KeySchedule } from './key-schedule.js'

/** The gateway's JWKS, answered by the listeners (src/http/server.ts) before the pipeline runs. */
export interface JwksEndpoint {
  readonly path: string
  serve(req: IncomingMessage, res: ServerResponse): void
  /** The document published at `nowMs` (for tests and the CLI). */
  document(nowMs: number): { keys: Array<Record<string, string>> }
}

interface Published {
  readonly body: Buffer
  /** When the document next changes (a key retires); Infinity when never. */
  readonly until: number
}

/**
 * RFC 7517 §5 JWK Set of the public signing keys: the current key and every previous key still
 * inside its overlap; never a private member (key-set.ts builds the public JWKs from the public
 * key alone). The body is built once, and again only when a key's retirement passes, so serving
 * it costs a comparison. Cache-Control max-age is jwksMaxAgeSec, cut down so that no cache keeps
 * a retired key past its retirement.
 */
export function createJwksEndpoint(options: { path: string; maxAgeSec: number; realm: string; schedule: KeySchedule; now: () => number }): JwksEndpoint {
  const { schedule, now, maxAgeSec } = options
  const document = (t: number) => ({ keys: schedule.publishedAt(t).map((k) => ({ ...k.publicJwk })) })
  const build = (t: number): Published => ({ body: Buffer.from(JSON.stringify(document(t))), until: schedule.nextPublicationChange(t) })
  let published = build(now())

  return {
    path: options.path,
    document,
    serve(req, res) {
      const method = req.method
      if (method !== 'GET' && method !== 'HEAD') {
        const p = toProblem(new GatewayError('ERR_ROUTE_METHOD_NOT_ALLOWED', { reason: 'jwks', headers: { allow: 'GET, HEAD' } }), resolveRequestId(req.headers['x-request-id']), options.realm)
        res.writeHead(p.status, p.headers).end(p.body)
        return
      }
      const t = now()
      if (t >= published.until) published = build(t)
      const maxAge = Math.max(0, Math.min(maxAgeSec, Math.floor((published.until - t) / 1000)))
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': published.body.length,
        'cache-control': `public, max-age=${maxAge}`,
        'x-content-type-options': 'nosniff',
      })
      res.end(method === 'HEAD' ? undefined : published.body)
    },
  }
}
