import { spawnServer } from '../child.js'
import { bearer, rotate, tamper, type BenchContext, type Target } from '../target.js'
import { BENCH_PATH, benchScript, listeningUrl } from './common.js'

/** Fastify + @fastify/http-proxy + @fastify/jwt + @fastify/rate-limit, warm token set. */
export function fastifyStack(): Target {
  let next: () => string = () => ''
  let bad = ''
  return {
    id: 'fastify',
    label: 'fastify + http-proxy + jwt + rate-limit',
    async start(ctx: BenchContext) {
      next = rotate(ctx.warmTokens.map(bearer))
      bad = bearer(tamper(ctx.warmTokens[0]))
      return spawnServer([benchScript('fastify-stack.js')], listeningUrl, {
        BENCH_UPSTREAM: ctx.upstreamUrl,
        BENCH_UPSTREAM_CONNECTIONS: String(ctx.upstreamConnections),
        BENCH_PUBLIC_KEY_PEM: ctx.issuer.publicKeyPem,
        BENCH_ISSUER: ctx.issuer.issuer,
        BENCH_AUDIENCE: ctx.issuer.audience,
        BENCH_SCOPE: ctx.issuer.scope,
      })
    },
    load: () => ({ path: BENCH_PATH, authorization: next }),
    probe: () => next(),
    refusal: () => bad,
  }
}
