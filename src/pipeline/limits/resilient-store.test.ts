import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startRedisServer, type OwnRedis } from '../../../test/helpers/redis.js'
import type { StoreErrorPolicy } from './config.js'
import { intervalUs } from './gcra.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore, type RedisStore } from './redis-store.js'
import { createResilientStore, type ResilientStore, type StoreEvent } from './resilient-store.js'
import type { PolicyCheck } from './store.js'

/**
 * Each test starts its own redis-server (never the shared one), kills it mid-test, and starts it
 * again on the same port. Time for the limits and for the circuit is injected.
 */
const T0 = Date.UTC(2031, 0, 15, 12)
const BF = { intervalUs: 1e6, threshold: 3, lockAfter: 6, lockMs: 60_000, baseDelayMs: 1000, maxDelayMs: 60_000 }
const threePerHour = (): PolicyCheck[] => [{ kind: 'rate', key: 'r:k', intervalUs: intervalUs(3, 3600), burst: 3 }]

interface Rig {
  readonly own: OwnRedis
  readonly redis: RedisStore
  readonly store: ResilientStore
  readonly events: StoreEvent[]
  readonly clock: { now: number }
  close(): Promise<void>
}

async function rig(t: TestContext, onStoreError: StoreErrorPolicy): Promise<Rig | undefined> {
  const own = await startRedisServer(t)
  if (!own) return undefined
  const clock = { now: T0 }
  const events: StoreEvent[] = []
  const redis = createRedisStore({ url: own.url, keyPrefix: 'p:', clock: 'gateway', commandTimeoutMs: 300, connectTimeoutMs: 1000 })
  await redis.ready()
  const store = createResilientStore({
    primary: redis,
    fallback: createMemoryStore({ maxKeys: 1000 }),
    onStoreError,
    probeIntervalMs: 1000,
    now: () => clock.now,
    onEvent: (e) => events.push(e),
  })
  return {
    own,
    redis,
    store,
    events,
    clock,
    async close() {
      await store.close()
      await own.close()
    },
  }
}

/** Waits (bounded, to avoid a hang only) until the client has reconnected to the restarted Redis. */
async function reconnected(redis: RedisStore): Promise<void> {
  for (let i = 0; i < 400 && !redis.isReady(); i++) await new Promise((r) => setTimeout(r, 50))
  assert.ok(redis.isReady(), 'the client reconnects on its own')
}

test('with fallback-memory, a Redis crash switches to local limits that hold, and Redis takes over again when it returns', { timeout: 60_000 }, async (t) => {
  const r = await rig(t, 'fallback-memory')
  if (!r) return
  try {
    const viaRedis = await r.store.check(threePerHour(), r.clock.now)
    assert.deepEqual([viaRedis.allowed, viaRedis.source], [true, 'primary'])

    await r.own.stop()
    const sources: Array<string | undefined> = []
    const allowed: boolean[] = []
    for (let i = 0; i < 5; i++) {
      const d = await r.store.check(threePerHour(), r.clock.now)
      sources.push(d.source)
      allowed.push(d.allowed)
    }
    // The local limiter enforces the same policy: 3 per hour, then denied.
    assert.deepEqual(sources, ['fallback', 'fallback', 'fallback', 'fallback', 'fallback'])
    assert.deepEqual(allowed, [true, true, true, false, false])
    assert.deepEqual(
      r.events.map((e) => e.type),
      ['limits.store_unavailable'],
    )
    assert.equal(r.store.stats().state, 'down')

    await r.own.start()
    await reconnected(r.redis)
    const back = await r.store.check(threePerHour(), r.clock.now)
    assert.equal(back.source, 'primary')
    // Redis restarted empty (no persistence in this test): the key is fresh there.
    assert.deepEqual([back.allowed, back.results[0].remaining], [true, 2])
    assert.deepEqual(
      r.events.map((e) => e.type),
      ['limits.store_unavailable', 'limits.store_recovered'],
    )
    const stats = r.store.stats()
    assert.deepEqual([stats.state, stats.unavailableEvents, stats.recoveredEvents, stats.degradedDecisions], ['up', 1, 1, 5])
  } finally {
    await r.close()
  }
})

test('with deny, requests are refused as unavailable while Redis is down, and a dead Redis is probed at most once per interval', { timeout: 60_000 }, async (t) => {
  const r = await rig(t, 'deny')
  if (!r) return
  try {
    await r.own.stop()
    const first = await r.store.check(threePerHour(), r.clock.now)
    assert.deepEqual([first.allowed, first.unavailable, first.retryAfterMs >= 1000], [false, true, true])
    const errorsAfterFirst = r.store.stats().storeErrors
    for (let i = 0; i < 20; i++) assert.equal((await r.store.check(threePerHour(), r.clock.now)).unavailable, true)
    assert.equal(r.store.stats().storeErrors, errorsAfterFirst, 'no Redis call while the circuit is open')
    r.clock.now += 1000
    await r.store.check(threePerHour(), r.clock.now)
    assert.equal(r.store.stats().storeErrors, errorsAfterFirst + 1, 'one probe after the interval')

    await r.own.start()
    await reconnected(r.redis)
    const back = await r.store.check(threePerHour(), r.clock.now)
    assert.deepEqual([back.allowed, back.source], [true, 'primary'])
  } finally {
    await r.close()
  }
})

test('with allow, requests pass unlimited while Redis is down', { timeout: 60_000 }, async (t) => {
  const r = await rig(t, 'allow')
  if (!r) return
  try {
    await r.own.stop()
    for (let i = 0; i < 10; i++) {
      const d = await r.store.check(threePerHour(), r.clock.now)
      assert.deepEqual([d.allowed, d.source, d.results.length], [true, 'bypass', 0])
    }
    assert.deepEqual(
      r.events.map((e) => [e.type, e.onStoreError]),
      [['limits.store_unavailable', 'allow']],
    )
  } finally {
    await r.close()
  }
})

test('a hung Redis (stopped process, open socket) is cut off by the command timeout and requests fall back', { timeout: 60_000 }, async (t) => {
  const r = await rig(t, 'fallback-memory')
  if (!r) return
  try {
    r.own.pause()
    const d = await r.store.check(threePerHour(), r.clock.now)
    assert.deepEqual([d.allowed, d.source], [true, 'fallback'])
    assert.equal(r.events[0]?.type, 'limits.store_unavailable')
    r.own.resume()
    // The connection never dropped, so no reconnect hint: the next probe waits for the interval.
    assert.equal((await r.store.check(threePerHour(), r.clock.now)).source, 'fallback')
    r.clock.now += 1000
    assert.equal((await r.store.check(threePerHour(), r.clock.now)).source, 'primary')
    assert.equal(r.events.at(-1)?.type, 'limits.store_recovered')
  } finally {
    r.own.resume()
    await r.close()
  }
})

test('failed authentications are still counted locally while Redis is down, and not at all under deny', { timeout: 60_000 }, async (t) => {
  const local = await rig(t, 'fallback-memory')
  if (!local) return
  try {
    await local.own.stop()
    let last
    for (let i = 0; i < 4; i++) last = await local.store.recordFailures(['f:ip'], BF, local.clock.now)
    assert.deepEqual([last![0].score, last![0].blocked], [4, true])
  } finally {
    await local.close()
  }
  const closed = await rig(t, 'deny')
  if (!closed) return
  try {
    await closed.own.stop()
    assert.deepEqual(await closed.store.recordFailures(['f:ip'], BF, closed.clock.now), [])
  } finally {
    await closed.close()
  }
})
