import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { GatewayError } from '../../errors/gateway-error.js'
import { deleteByPrefix, requireRedis, uniquePrefix } from '../../../test/helpers/redis.js'
import { compileRoute } from '../route/router.js'
import type { Identity, RequestContext } from '../stage.js'
import { createBruteForceTracker } from './brute-force.js'
import type { LimitsConfig, PolicyConfig } from './config.js'
import { createLimits, createLimitsStage, rateLimitResponseHeaders, type LimitsContextFields, type LimitsPhase } from './index.js'
import { addressKey } from './keys.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore } from './redis-store.js'
import type { LimitStore } from './store.js'

const T0 = Date.UTC(2031, 0, 15, 12)

function limitsConfig(policies: PolicyConfig[], over: Partial<LimitsConfig> = {}): LimitsConfig {
  return {
    store: { type: 'memory', maxKeys: 10_000 },
    headers: { rateLimit: true },
    policies,
    defaultPolicies: [],
    ipv6PrefixLength: 64,
    bruteForce: { enabled: true, threshold: 3, windowSec: 60, throttle: { baseDelayMs: 1000, maxDelayMs: 60_000 }, lockout: { after: 6, ttlSec: 600 }, perAccount: true },
    events: { perKeyPerSec: 1 },
    ...over,
  }
}

const identity = (clientId: string, claims: Record<string, unknown> = {}): Identity => ({
  issuer: 'https://idp.example',
  issuerId: 'main',
  subject: `user-of-${clientId}`,
  clientId,
  scopes: new Set(),
  jti: undefined,
  tokenDigest: 'digest',
  expiresAt: T0 + 3_600_000,
  claims,
})

type TestCtx = RequestContext & LimitsContextFields

function ctx(o: { route?: string; auth?: 'required' | 'public'; ip?: string; identity?: Identity; authorization?: string } = {}): TestCtx {
  return {
    route: compileRoute({ id: o.route ?? 'orders', path: '/orders', methods: ['GET'], upstream: 'u', auth: o.auth ?? 'required' }, 0),
    clientIp: o.ip ?? '203.0.113.7',
    identity: o.identity,
    req: { headers: o.authorization ? { authorization: o.authorization } : {} },
    res: new EventEmitter(),
  } as unknown as TestCtx
}

function stage(config: LimitsConfig, routes: Record<string, string[]>, phase: LimitsPhase, store: LimitStore = createMemoryStore({ maxKeys: 10_000 }), now = () => T0) {
  const bruteForce = createBruteForceTracker(config.bruteForce, store, { now, addressKey: (ip) => addressKey(ip, config.ipv6PrefixLength) })
  return createLimitsStage(config, new Map(Object.entries(routes)), { now, bruteForce }, store, phase)
}

/** Runs onRequest; returns the GatewayError it threw, or undefined. */
async function run(s: { onRequest(c: RequestContext): void | Promise<void> }, c: RequestContext): Promise<GatewayError | undefined> {
  try {
    await s.onRequest(c)
    return undefined
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err))
    return err
  }
}

const perClient: PolicyConfig = { id: 'per-client', key: ['client'], rate: { limit: 3, periodSec: 60 }, quotas: [{ limit: 100, period: 'day' }] }
const perIp: PolicyConfig = { id: 'per-ip', key: ['ip'], rate: { limit: 5, periodSec: 1 } }

test('admits up to the limit, then answers ERR_LIMITS_EXCEEDED with Retry-After and RateLimit fields', async () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  for (let i = 0; i < 3; i++) assert.equal(await run(s, ctx({ identity: identity('app') })), undefined)
  const err = await run(s, ctx({ identity: identity('app') }))
  assert.equal(err?.code, 'ERR_LIMITS_EXCEEDED')
  assert.equal(err?.status, 429)
  assert.equal(err?.reason, 'limit:per-client')
  assert.deepEqual(err?.headers, {
    'retry-after': '20',
    'ratelimit-policy': '"per-client";q=3;w=60, "per-client.day";q=100;w=86400',
    // Three of the 100 were used; the denied fourth consumed nothing, so 97 are left.
    ratelimit: '"per-client";r=0;t=20, "per-client.day";r=97;t=43200',
  })
})

test('a denial reports what is really left: unconsumed checks keep their unit, and the earlier phase is listed too', async () => {
  const inFlight: PolicyConfig = { id: 'in-flight', key: ['client'], concurrency: { limit: 4, leaseSec: 300 } }
  const config = limitsConfig([perIp, perClient, inFlight])
  const routes = { orders: ['per-ip', 'per-client', 'in-flight'] }
  const store = createMemoryStore({ maxKeys: 10_000 })
  const before = stage(config, routes, 'beforeAuthn', store)
  const after = stage(config, routes, 'afterAuthn', store)
  for (let i = 0; i < 3; i++) {
    const c = ctx({ identity: identity('app') })
    await run(before, c)
    assert.equal(await run(after, c), undefined)
    c.res.emit('close') // the concurrency slot comes back
  }
  const c = ctx({ identity: identity('app') })
  assert.equal(await run(before, c), undefined)
  const err = await run(after, c)
  assert.equal(err?.reason, 'limit:per-client')
  assert.deepEqual(err?.headers, {
    'retry-after': '20',
    'ratelimit-policy': '"per-ip";q=5;w=1, "per-client";q=3;w=60, "per-client.day";q=100;w=86400, "in-flight.concurrency";q=4;qu="concurrent-requests"',
    // per-ip: four admitted before authn (consumed); the day quota and the slots: nothing taken by this request.
    ratelimit: '"per-ip";r=1;t=1, "per-client";r=0;t=20, "per-client.day";r=97;t=43200, "in-flight.concurrency";r=4;t=0',
  })
})

test('an admitted request carries RateLimit fields for the response', async () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  const c = ctx({ identity: identity('app') })
  await run(s, c)
  assert.deepEqual(rateLimitResponseHeaders(c), {
    'ratelimit-policy': '"per-client";q=3;w=60, "per-client.day";q=100;w=86400',
    ratelimit: '"per-client";r=2;t=20, "per-client.day";r=99;t=43200',
  })
})

test("one client's exhaustion never limits another", async () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  for (let i = 0; i < 5; i++) await run(s, ctx({ identity: identity('greedy') }))
  assert.equal((await run(s, ctx({ identity: identity('greedy') })))?.code, 'ERR_LIMITS_EXCEEDED')
  assert.equal(await run(s, ctx({ identity: identity('polite') })), undefined)
})

test('with the memory store the stage stays synchronous', () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  assert.equal(s.onRequest(ctx({ identity: identity('app') })), undefined)
})

test('identity-free policies run before authn, identity policies after it', async () => {
  const config = limitsConfig([perClient, perIp])
  const before = stage(config, { orders: ['per-client', 'per-ip'] }, 'beforeAuthn')
  const after = stage(config, { orders: ['per-client', 'per-ip'] }, 'afterAuthn')
  const c1 = ctx({ auth: 'public' })
  await run(before, c1)
  assert.equal(rateLimitResponseHeaders(c1)!['ratelimit-policy'], '"per-ip";q=5;w=1')
  const c2 = ctx({ identity: identity('app') })
  await run(after, c2)
  assert.equal(rateLimitResponseHeaders(c2)!['ratelimit-policy'], '"per-client";q=3;w=60, "per-client.day";q=100;w=86400')
})

test('IPv6 clients of one /64 share a per-address limit', async () => {
  const s = stage(limitsConfig([perIp]), { orders: ['per-ip'] }, 'beforeAuthn')
  for (let i = 0; i < 5; i++) assert.equal(await run(s, ctx({ auth: 'public', ip: `2001:db8:7:7::${i + 1}` })), undefined)
  assert.equal((await run(s, ctx({ auth: 'public', ip: '2001:db8:7:7:ffff::9' })))?.code, 'ERR_LIMITS_EXCEEDED')
  assert.equal(await run(s, ctx({ auth: 'public', ip: '2001:db8:7:8::1' })), undefined)
})

test('default policies apply to every route, listed or not', async () => {
  const s = stage(limitsConfig([perIp], { defaultPolicies: ['per-ip'] }), { orders: [] }, 'beforeAuthn')
  for (let i = 0; i < 5; i++) await run(s, ctx({ route: 'unlisted', auth: 'public' }))
  assert.equal((await run(s, ctx({ route: 'unlisted', auth: 'public' })))?.code, 'ERR_LIMITS_EXCEEDED')
})

test('a tier claim selects the tier limits and its RateLimit-Policy', async () => {
  const tiered: PolicyConfig = { ...perClient, tiers: { claim: 'plan', values: { gold: { rate: { limit: 10, periodSec: 60 } } } } }
  const s = stage(limitsConfig([tiered]), { orders: ['per-client'] }, 'afterAuthn')
  let admitted = 0
  for (let i = 0; i < 20; i++) if (!(await run(s, ctx({ identity: identity('rich', { plan: 'gold' }) })))) admitted++
  assert.equal(admitted, 10)
  const c = ctx({ identity: identity('poor', { plan: 'unknown-tier' }) })
  await run(s, c)
  assert.match(rateLimitResponseHeaders(c)!['ratelimit-policy'], /^"per-client";q=3;w=60/)
  const g = ctx({ identity: identity('rich2', { plan: 'gold' }) })
  await run(s, g)
  assert.match(rateLimitResponseHeaders(g)!['ratelimit-policy'], /^"per-client";q=10;w=60/)
})

test('anonymous requests on a client-keyed policy are counted by address', async () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  for (let i = 0; i < 3; i++) await run(s, ctx({ auth: 'public', ip: '198.51.100.1' }))
  assert.equal((await run(s, ctx({ auth: 'public', ip: '198.51.100.1' })))?.code, 'ERR_LIMITS_EXCEEDED')
  assert.equal(await run(s, ctx({ auth: 'public', ip: '198.51.100.2' })), undefined)
})

test('a token without client_id or azp is counted by its subject on a client-keyed policy, not by address', async () => {
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn')
  const clientless = (subject: string): Identity => ({ ...identity('x'), clientId: undefined, subject })
  // One holder spread over addresses is still one client.
  for (let i = 0; i < 3; i++) assert.equal(await run(s, ctx({ identity: clientless('svc-a'), ip: `198.51.100.${i + 1}` })), undefined)
  assert.equal((await run(s, ctx({ identity: clientless('svc-a'), ip: '198.51.100.9' })))?.code, 'ERR_LIMITS_EXCEEDED')
  // Another subject, from the same address, is another client.
  assert.equal(await run(s, ctx({ identity: clientless('svc-b'), ip: '198.51.100.9' })), undefined)
})

test('a concurrency slot is held until the response closes', async () => {
  const capped: PolicyConfig = { id: 'slots', key: ['client'], concurrency: { limit: 2, leaseSec: 60 } }
  const s = stage(limitsConfig([capped]), { orders: ['slots'] }, 'afterAuthn')
  const a = ctx({ identity: identity('app') })
  const b = ctx({ identity: identity('app') })
  await run(s, a)
  await run(s, b)
  const third = await run(s, ctx({ identity: identity('app') }))
  assert.deepEqual([third?.code, third?.headers?.['retry-after']], ['ERR_LIMITS_EXCEEDED', '1'])
  a.res.emit('close')
  assert.equal(await run(s, ctx({ identity: identity('app') })), undefined)
})

test('a slot taken for a client that already went away is given back at once', async () => {
  const capped: PolicyConfig = { id: 'slots', key: ['client'], concurrency: { limit: 1, leaseSec: 60 } }
  const s = stage(limitsConfig([capped]), { orders: ['slots'] }, 'afterAuthn')
  const gone = ctx({ identity: identity('app') })
  ;(gone.res as unknown as { closed: boolean }).closed = true
  await run(s, gone)
  assert.equal(await run(s, ctx({ identity: identity('app') })), undefined)
})

test('headers off: a denial sends Retry-After only and admitted requests carry no fields', async () => {
  const s = stage(limitsConfig([perClient], { headers: { rateLimit: false } }), { orders: ['per-client'] }, 'afterAuthn')
  const c = ctx({ identity: identity('app') })
  await run(s, c)
  assert.equal(rateLimitResponseHeaders(c), undefined)
  for (let i = 0; i < 2; i++) await run(s, ctx({ identity: identity('app') }))
  assert.deepEqual((await run(s, ctx({ identity: identity('app') })))?.headers, { 'retry-after': '20' })
})

test('a locked address is refused before authn on routes that authenticate, not on public ones', async () => {
  const config = limitsConfig([])
  const store = createMemoryStore({ maxKeys: 10_000 })
  const bruteForce = createBruteForceTracker(config.bruteForce, store, { now: () => T0, addressKey: (ip) => addressKey(ip, 64) })
  const s = createLimitsStage(config, new Map(), { now: () => T0, bruteForce }, store, 'beforeAuthn')
  for (let i = 0; i < 6; i++) await bruteForce.recordFailure({ clientIp: '198.51.100.66', req: { headers: { authorization: 'Bearer junk' } } })
  const err = await run(s, ctx({ ip: '198.51.100.66', authorization: 'Bearer junk' }))
  assert.deepEqual([err?.code, err?.reason, err?.headers?.['retry-after']], ['ERR_LIMITS_EXCEEDED', 'brute_force_locked', '600'])
  assert.equal(await run(s, ctx({ ip: '198.51.100.66', auth: 'public' })), undefined)
  assert.equal(await run(s, ctx({ ip: '198.51.100.67', authorization: 'Bearer junk' })), undefined)
})

test('a store that failed under onStoreError "deny" yields 503 ERR_LIMITS_UNAVAILABLE', async () => {
  const failing: LimitStore = {
    kind: 'stub',
    check: () => ({ allowed: false, denied: -1, retryAfterMs: 1000, results: [], unavailable: true }),
    recordFailures: () => [],
    clearFailures: () => {},
    close: async () => {},
  }
  const s = stage(limitsConfig([perClient]), { orders: ['per-client'] }, 'afterAuthn', failing)
  const err = await run(s, ctx({ identity: identity('app') }))
  assert.deepEqual([err?.code, err?.status, err?.headers?.['retry-after']], ['ERR_LIMITS_UNAVAILABLE', 503, '1'])
})

test('createLimits wires one store, the tracker and both stages from config', async () => {
  const limits = createLimits(limitsConfig([perClient, perIp]), new Map([['orders', ['per-client', 'per-ip']]]), { now: () => T0 })
  assert.deepEqual([limits.beforeAuthn.phase, limits.afterAuthn.phase, limits.store.kind], ['beforeAuthn', 'afterAuthn', 'memory'])
  const c = ctx({ identity: identity('app') })
  await run(limits.beforeAuthn, c)
  await run(limits.afterAuthn, c)
  assert.equal(rateLimitResponseHeaders(c)!.ratelimit, '"per-ip";r=4;t=1, "per-client";r=2;t=20, "per-client.day";r=99;t=43200')
  await limits.close()
})

test('with the Redis store the stage admits exactly the limit across two gateway instances', async (t) => {
  const url = await requireRedis(t)
  if (!url) return
  const keyPrefix = uniquePrefix('limits-stage')
  const stores = [0, 1].map(() => createRedisStore({ url, keyPrefix, clock: 'redis', commandTimeoutMs: 2000, connectTimeoutMs: 2000 }))
  try {
    await Promise.all(stores.map((s) => s.ready()))
    const policy: PolicyConfig = { id: 'shared', key: ['client'], rate: { limit: 50, periodSec: 3600 } }
    const stages = stores.map((store) => stage(limitsConfig([policy]), { orders: ['shared'] }, 'afterAuthn', store))
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => run(stages[i % 2], ctx({ identity: identity('app') }))))
    assert.equal(results.filter((e) => e === undefined).length, 50)
    assert.ok(results.every((e) => e === undefined || e.code === 'ERR_LIMITS_EXCEEDED'))
  } finally {
    await Promise.all(stores.map((s) => s.close()))
    await deleteByPrefix(url, keyPrefix)
  }
})

test('createLimits with a Redis store is ready before the first request and decides through Redis', async (t) => {
  const url = await requireRedis(t)
  if (!url) return
  const keyPrefix = uniquePrefix('create-limits')
  const storeEvents: unknown[] = []
  const config = limitsConfig([perClient], {
    store: {
      type: 'redis',
      maxKeys: 10_000,
      redis: { url, keyPrefix, commandTimeoutMs: 2000, connectTimeoutMs: 2000, clock: 'redis', onStoreError: 'fallback-memory', probeIntervalMs: 1000, pipelining: false },
    },
  })
  const limits = createLimits(config, new Map([['orders', ['per-client']]]), { now: () => Date.now(), onStoreEvent: (e) => storeEvents.push(e) })
  try {
    await limits.ready()
    const results = []
    for (let i = 0; i < 4; i++) results.push((await run(limits.afterAuthn, ctx({ identity: identity('app') })))?.code)
    assert.deepEqual(results, [undefined, undefined, undefined, 'ERR_LIMITS_EXCEEDED'])
    assert.equal(limits.store.kind, 'resilient')
    assert.deepEqual(storeEvents, [])
  } finally {
    await limits.close()
    await deleteByPrefix(url, keyPrefix)
  }
})
