import { randomBytes } from 'node:crypto'
import { countByPrefix, deleteByPrefix, REDIS_URL, redisReachable, showUrl } from '../../test/helpers/redis.js'
import { bearer, type BenchContext, type RunningTarget, type Target } from '../target.js'
import { BENCH_PATH } from './common.js'
import { gatewayTarget } from './gateway.js'

/**
 * Two rows for the cost of rate limiting: the warm gateway with a limit policy on its route, its
 * counters in memory or in Redis. Each is compared with the warm gateway without a policy, in the
 * same run. The policy is what a user would write — per client, a rate and a daily quota, one
 * store call for both — with limits high enough never to trigger: every response must still be
 * a 2xx (the bench refuses anything else), so the figures are the price of counting, not of
 * refusing.
 *
 * Brute-force protection is on in every gateway row (it is the default), so every row already
 * has one store call per request before authn (the failure guard of the client address); the
 * policy adds one after authn. With Redis, both are Redis round trips.
 */
const REQUIRED = process.env.PORTCULLIS_REQUIRE_SERVICES === '1'

const POLICY = {
  id: 'bench-client',
  key: ['client'],
  // GCRA keeps whole microseconds per request: a million per second is the highest rate it takes.
  rate: { limit: 1_000_000, periodSec: 1 },
  quotas: [{ limit: 1_000_000_000_000, period: 'day' }],
}

/** A config change: the bench policy on every route, counted in `store` (also bench:instructions' limits-memory row). */
export function withPolicy(store: Record<string, unknown>) {
  return (config: Record<string, unknown>): Record<string, unknown> => ({
    ...config,
    routes: (config.routes as Array<Record<string, unknown>>).map((r) => ({ ...r, limits: [POLICY.id] })),
    limits: { store, policies: [POLICY] },
  })
}

/** Asks the row's gateway once and refuses to measure a row whose limiter is not in the path. */
async function assertLimiterActive(running: RunningTarget, ctx: BenchContext, what: string): Promise<void> {
  const r = await fetch(running.url + BENCH_PATH, { headers: { authorization: bearer(ctx.warmTokens[0]) } })
  await r.body?.cancel()
  const policy = r.headers.get('ratelimit-policy') ?? ''
  if (r.status !== 200 || !policy.includes(`"${POLICY.id}"`)) {
    throw new Error(`${what}: expected a 200 with RateLimit-Policy naming "${POLICY.id}", got ${r.status} "${policy}"`)
  }
}

/** Wraps a gateway row: checks the limiter after start, and runs `cleanup` after stop. */
function limited(inner: Target, check: (running: RunningTarget, ctx: BenchContext) => Promise<void>, cleanup?: () => Promise<void>): Target {
  return {
    ...inner,
    async start(ctx) {
      const running = await inner.start(ctx)
      try {
        await check(running, ctx)
      } catch (err) {
        await running.stop()
        await cleanup?.()
        throw err
      }
      return {
        ...running,
        async stop() {
          await running.stop()
          await cleanup?.()
        },
      }
    },
  }
}

export function limitsMemoryTarget(): Target {
  const inner = gatewayTarget({
    id: 'limits-memory',
    label: 'gateway + rate limit, memory store',
    tokens: 'warm',
    configure: withPolicy({ type: 'memory' }),
    checks: [{ label: 'memory limiter >= 0.9x gateway without limits (req/s)', metric: 'rps', op: '>=', factor: 0.9, against: 'gateway-warm' }],
  })
  return limited(inner, (running, ctx) => assertLimiterActive(running, ctx, 'limits-memory'))
}

export function limitsRedisTarget(url = REDIS_URL): Target {
  // A prefix of this run only; deleted when the row stops. The shared Redis is never flushed.
  const keyPrefix = `portcullis-bench:${process.pid}:${randomBytes(4).toString('hex')}:`
  const store = { type: 'redis', redis: { url, keyPrefix } }
  const inner = gatewayTarget({
    id: 'limits-redis',
    label: 'gateway + rate limit, Redis store',
    tokens: 'warm',
    configure: withPolicy(store),
    checks: [{ label: 'Redis limiter >= 0.7x gateway without limits (req/s)', metric: 'rps', op: '>=', factor: 0.7, against: 'gateway-warm' }],
  })
  return limited(
    inner,
    async (running, ctx) => {
      await assertLimiterActive(running, ctx, 'limits-redis')
      // The answer above could have come from the local fallback: the counters must be in Redis.
      if ((await countByPrefix(url, keyPrefix)) === 0) throw new Error(`limits-redis: no counter under the row's prefix in Redis at ${showUrl(url)}`)
    },
    () => deleteByPrefix(url, keyPrefix).catch(() => {}),
  )
}

/**
 * The limits rows. Without a reachable Redis the Redis row is left out and a line says so (with
 * PORTCULLIS_REQUIRE_SERVICES=1 it stays, and fails loudly at start instead).
 */
export async function limitsTargets(): Promise<{ targets: Target[]; skipped: Array<{ id: string; why: string }> }> {
  const targets = [limitsMemoryTarget()]
  const skipped: Array<{ id: string; why: string }> = []
  if (REQUIRED || (await redisReachable(REDIS_URL))) targets.push(limitsRedisTarget())
  else skipped.push({ id: 'limits-redis', why: `gateway + rate limit, Redis store: Redis not reachable at ${showUrl(REDIS_URL)} (set REDIS_URL)` })
  return { targets, skipped }
}

