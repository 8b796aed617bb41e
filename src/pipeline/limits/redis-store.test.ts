import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { deleteByPrefix, requireRedis, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js'
import { intervalUs } from './gcra.js'
import { createRedisStore, redisClientOptions, type RedisStore } from './redis-store.js'
import { runStoreContract } from './store.contract.js'
import type { PolicyCheck } from './store.js'

const RUN = uniquePrefix('redis-store')
const T0 = Date.UTC(2031, 0, 15, 12)
const TIMEOUTS = { commandTimeoutMs: 2000, connectTimeoutMs: 2000 }

async function openStore(t: TestContext, clock: 'redis' | 'gateway', keyPrefix = `${RUN}${Math.random().toString(36).slice(2)}:`) {
  const url = await requireRedis(t)
  if (!url) return undefined
  const store = createRedisStore({ url, keyPrefix, clock, ...TIMEOUTS })
  await store.ready()
  return { store, url, keyPrefix }
}

runStoreContract('redis store', async (t) => {
  const opened = await openStore(t, 'gateway')
  if (!opened) return undefined
  return {
    store: opened.store,
    async cleanup() {
      await opened.store.close()
      await deleteByPrefix(opened.url, opened.keyPrefix)
    },
  }
})

const BF = { intervalUs: 1e6, threshold: 3, lockAfter: 6, lockMs: 1000, baseDelayMs: 10, maxDelayMs: 100 }
const everyKind = (k: string): PolicyCheck[] => [
  { kind: 'rate', key: `r:${k}`, intervalUs: intervalUs(10, 60), burst: 10 },
  { kind: 'quota', key: `q:${k}:d`, limit: 100, period: 'day' },
  { kind: 'quota', key: `q:${k}:m`, limit: 1000, period: 'month' },
  { kind: 'concurrency', key: `c:${k}`, limit: 5, leaseMs: 60_000, leaseId: 'lease-1' },
  { kind: 'guard', key: `f:${k}`, params: BF, countBlocked: true },
]

test('redis store decides all policies of a request in one round trip', async (t) => {
  const opened = await openStore(t, 'gateway')
  if (!opened) return
  const { store, url, keyPrefix } = opened
  try {
    await store.check(everyKind('warm'), T0) // the script is loaded on this connection now
    const sent: string[] = []
    const original = store.client.sendCommand.bind(store.client)
    store.client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
      sent.push(command.name)
      return (original as (...a: unknown[]) => unknown)(command, ...rest)
    }) as typeof store.client.sendCommand
    const d = await store.check(everyKind('one-trip'), T0)
    assert.equal(d.allowed, true)
    assert.deepEqual(sent, ['evalsha'])
  } finally {
    await store.close()
    await deleteByPrefix(url, keyPrefix)
  }
})

test('redis store gives every key it writes an expiry', async (t) => {
  const opened = await openStore(t, 'gateway')
  if (!opened) return
  const { store, url, keyPrefix } = opened
  const probe = new Redis(url)
  try {
    await store.check(everyKind('ttl'), T0)
    await store.recordFailures(['f:ttl-ip', 'f:ttl-account'], BF, T0)
    const keys = await probe.keys(`${keyPrefix}*`)
    assert.equal(keys.length, 6)
    for (const key of keys) {
      const ttl = await probe.pttl(key)
      assert.ok(ttl > 0, `${key.slice(keyPrefix.length)} has PTTL ${ttl}`)
    }
  } finally {
    probe.disconnect()
    await store.close()
    await deleteByPrefix(url, keyPrefix)
  }
})

test('quota counters in Redis survive a gateway restart', async (t) => {
  const opened = await openStore(t, 'gateway')
  if (!opened) return
  const { url, keyPrefix } = opened
  const q: PolicyCheck[] = [{ kind: 'quota', key: 'q:restart', limit: 5, period: 'month' }]
  try {
    for (let i = 0; i < 3; i++) assert.equal((await opened.store.check(q, T0)).allowed, true)
    await opened.store.close()
    const again = createRedisStore({ url, keyPrefix, clock: 'gateway', ...TIMEOUTS })
    await again.ready()
    const d = await again.check(q, T0 + 60_000)
    assert.deepEqual([d.allowed, d.results[0].remaining], [true, 1])
    await again.close()
  } finally {
    await deleteByPrefix(url, keyPrefix)
  }
})

test('1000 concurrent requests spread over three gateway connections against a limit of 100 admit exactly 100', async (t) => {
  const url = await requireRedis(t)
  if (!url) return
  const keyPrefix = `${RUN}spread:`
  // Three stores = three connections, as three gateway processes would have; Redis clock.
  const stores: RedisStore[] = [0, 1, 2].map(() => createRedisStore({ url, keyPrefix, clock: 'redis', ...TIMEOUTS }))
  try {
    await Promise.all(stores.map((s) => s.ready()))
    // 100 per hour: refilling one takes 36 s, far longer than the burst lasts.
    const check = (): PolicyCheck[] => [{ kind: 'rate', key: 'r:spread', intervalUs: intervalUs(100, 3600), burst: 100 }]
    const decisions = await Promise.all(Array.from({ length: 1000 }, (_, i) => stores[i % 3].check(check(), 0)))
    assert.equal(decisions.filter((d) => d.allowed).length, 100)
    const denied = decisions.find((d) => !d.allowed)!
    assert.ok(denied.retryAfterMs > 0 && denied.retryAfterMs <= 36_000)
  } finally {
    await Promise.all(stores.map((s) => s.close()))
    await deleteByPrefix(url, keyPrefix)
  }
})

test('redis store with the Redis clock counts quotas in the current UTC window', async (t) => {
  const opened = await openStore(t, 'redis')
  if (!opened) return
  const { store, url, keyPrefix } = opened
  try {
    // The nowMs argument is ignored with clock "redis": a nonsense value must change nothing.
    const d = await store.check([{ kind: 'quota', key: 'q:clock', limit: 2, period: 'day' }], 0)
    assert.equal(d.allowed, true)
    assert.ok(d.results[0].resetMs > 0 && d.results[0].resetMs <= 86_400_000)
  } finally {
    await store.close()
    await deleteByPrefix(url, keyPrefix)
  }
})

test('redis store reloads its script after Redis lost it (NOSCRIPT → EVAL)', async (t) => {
  // SCRIPT FLUSH would disturb the shared Redis: use a private one.
  const own = await startRedisServer(t)
  if (!own) return
  const store = createRedisStore({ url: own.url, keyPrefix: 'p:', clock: 'gateway', ...TIMEOUTS })
  const admin = new Redis(own.url)
  try {
    await store.ready()
    const q: PolicyCheck[] = [{ kind: 'quota', key: 'q:noscript', limit: 5, period: 'day' }]
    assert.equal((await store.check(q, T0)).allowed, true)
    await admin.script('FLUSH')
    const d = await store.check(q, T0)
    assert.deepEqual([d.allowed, d.results[0].remaining], [true, 3])
  } finally {
    admin.disconnect()
    await store.close()
    await own.close()
  }
})

test('redis client options never queue commands while disconnected and bound every command', () => {
  const o = redisClientOptions({ commandTimeoutMs: 250, connectTimeoutMs: 2000 })
  assert.equal(o.enableOfflineQueue, false)
  assert.equal(o.maxRetriesPerRequest, 0)
  assert.equal(o.commandTimeout, 250)
  // Pipelining is opt-in: with it, a call made while a batch is out starts its timeout late.
  assert.equal(o.enableAutoPipelining, false)
  assert.ok(o.retryStrategy(1000) <= 1000)
})

for (const pipelining of [true, false]) {
  test(`with pipelining ${pipelining ? 'on' : 'off (the default)'}, eight concurrent checks reach Redis in ${pipelining ? 'one socket write' : 'eight writes'}`, async (t) => {
    const url = await requireRedis(t)
    if (!url) return
    const keyPrefix = `${RUN}${Math.random().toString(36).slice(2)}:`
    const store = createRedisStore({ url, keyPrefix, clock: 'gateway', ...TIMEOUTS, ...(pipelining ? { pipelining: true } : {}) })
    t.after(async () => {
      await store.close()
      await deleteByPrefix(url, keyPrefix)
    })
    await store.ready()
    // Each check its own burst, so each expects its own answer: replies handed to the wrong
    // caller would show.
    const rate = (k: string, burst = 10): PolicyCheck[] => [{ kind: 'rate', key: `r:${k}`, intervalUs: intervalUs(10, 60), burst }]
    await store.check(rate('warm'), T0) // the script is loaded and the connection settled
    const stream = (store.client as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream
    const write = stream.write
    let writes = 0
    stream.write = function (this: unknown, ...args: unknown[]) {
      writes++
      return write.apply(this, args)
    }
    try {
      const decisions = await Promise.all(Array.from({ length: 8 }, (_, i) => store.check(rate(`k${i}`, 10 + i), T0)))
      assert.deepEqual(
        decisions.map((d) => [d.allowed, d.results[0].remaining]),
        Array.from({ length: 8 }, (_, i) => [true, 9 + i]),
        'each check got its own answer',
      )
    } finally {
      stream.write = write
    }
    assert.equal(writes, pipelining ? 1 : 8)
  })
}

test('a check that timed out gives back the concurrency slot Redis took for it once Redis runs it late', async (t) => {
  // A hung Redis (SIGSTOP) of our own: the shared one must never be paused.
  const own = await startRedisServer(t)
  if (!own) return
  const store = createRedisStore({ url: own.url, keyPrefix: 'p:', clock: 'gateway', commandTimeoutMs: 100, connectTimeoutMs: 2000 })
  const admin = new Redis(own.url)
  t.after(async () => {
    own.resume()
    admin.disconnect()
    await store.close()
    await own.close()
  })
  await store.ready()
  const slot = (leaseId: string): PolicyCheck[] => [
    { kind: 'rate', key: 'r:late', intervalUs: intervalUs(100, 60), burst: 100 },
    { kind: 'concurrency', key: 'c:late', limit: 2, leaseMs: 300_000, leaseId },
  ]
  await store.check(slot('warm'), T0).then((d) => d.release?.()) // the script is loaded
  own.pause()
  // The command times out, the gateway answers by its failure policy (no slot to release)...
  await assert.rejects(store.check(slot('late-1'), T0))
  await assert.rejects(store.check(slot('late-2'), T0))
  own.resume()
  // ...but Redis still runs the script once it is back, and each run takes a slot.
  await store.client.ping() // after everything this connection sent before it
  assert.equal(await admin.zcard('p:c:late'), 0, 'no slot left behind by a timed-out check')
  const d = await store.check(slot('after'), T0)
  assert.deepEqual([d.allowed, d.results[1].remaining], [true, 1])
})
