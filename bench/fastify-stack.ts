// Child process: the "assemble it yourself" alternative to the gateway. Fastify with the three
// plugins a team would reach for, each configured the way its README shows:
//   @fastify/rate-limit  global, with a max high enough that it never triggers (its cost is counted)
//   @fastify/jwt         RS256 verification with the issuer's public key PEM, iss + aud checked
//   @fastify/http-proxy  forwards /api/* to the upstream over undici
// plus an onRequest hook that requires the scope, as the gateway route does.
//   env BENCH_UPSTREAM, BENCH_UPSTREAM_CONNECTIONS, BENCH_PUBLIC_KEY_PEM, BENCH_ISSUER,
//       BENCH_AUDIENCE, BENCH_SCOPE
//   env BENCH_FASTIFY_JWT_CACHE=1   turn on fast-jwt's verified-token cache (off by default in
//                                   @fastify/jwt, so off here unless asked)
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import fastifyHttpProxy from '@fastify/http-proxy'
import fastifyRateLimit from '@fastify/rate-limit'

function env(name: string): string {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is required`)
  return v
}

const upstream = env('BENCH_UPSTREAM')
const scope = env('BENCH_SCOPE')

const app = Fastify({ logger: false })

await app.register(fastifyRateLimit, { max: 1_000_000_000, timeWindow: '1 minute' })

await app.register(fastifyJwt, {
  secret: { public: env('BENCH_PUBLIC_KEY_PEM') },
  verify: {
    algorithms: ['RS256'],
    allowedIss: env('BENCH_ISSUER'),
    allowedAud: env('BENCH_AUDIENCE'),
    ...(process.env.BENCH_FASTIFY_JWT_CACHE === '1' ? { cache: true } : {}),
  },
})

app.addHook('onRequest', async (request, reply) => {
  // jwtVerify throws a 401 error that Fastify turns into the response.
  await request.jwtVerify()
  const granted = (request.user as { scope?: unknown }).scope
  if (typeof granted !== 'string' || !granted.split(' ').includes(scope)) {
    return reply.code(403).send({ error: 'insufficient_scope' })
  }
})

await app.register(fastifyHttpProxy, {
  upstream,
  prefix: '/api',
  rewritePrefix: '/api',
  undici: { connections: Number(process.env.BENCH_UPSTREAM_CONNECTIONS ?? 64), pipelining: 1 },
})

const address = await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(JSON.stringify({ listening: address }) + '\n')
process.once('SIGTERM', () => void app.close().finally(() => process.exit(0)))
