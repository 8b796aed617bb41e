import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, eventually, send, type Reply } from '../helpers/limits.js'
import { startRedisServer, uniquePrefix, type OwnRedis } from '../helpers/redis.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Redis failing under running gateways. Each test starts its OWN redis-server on a free port
 * (never the machine's shared one) and kills, pauses and restarts only that process. Requests
 * must always be answered (every request here is bounded by a client-side timeout), the
 * configured policy must hold while Redis is away, and traffic must flow through Redis again once
 * it is back, without restarting any gateway.
 */

const issuerOf = (ks: KeyServer) => ({ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] })

interface Setup {
  readonly ks: KeyServer
  readonly up: RecordingUpstream
  readonly redis: OwnRedis
  readonly gateways: StartedGateway[]
  start(): Promise<StartedGateway>
}

async function setup(t: TestContext, redisOptions: Record<string, unknown>): Promise<Setup | undefined> {
  const redis = await startRedisServer(t)
  if (!redis) return undefined
  const ks = await startKeyServer()
  const up = await startUpstream()
  const gateways: StartedGateway[] = []
  const prefix = uniquePrefix('limits-outage')
  t.after(async () => {
    redis.resume()
    await Promise.all(gateways.map((g) => g.stop()))
    await redis.close()
    await up.close()
    await ks.close()
  })
  const config = baseConfig({
    issuers: [issuerOf(ks)],
    upstreams: [{ id: 'up', url: up.url }],
    routes: [{ id: 'rate', path: '/rate/**', methods: ['GET'], upstream: 'up', auth: 'required', limits: ['five'] }],
    metrics: { enabled: true, port: 0 },
    limits: {
      store: { type: 'redis', redis: { url: redis.url, keyPrefix: prefix, probeIntervalMs: 200, ...redisOptions } },
      policies: [{ id: 'five', key: ['client'], rate: { limit: 5, periodSec: 3600 } }],
    },
  })
  return {
    ks,
    up,
    redis,
    gateways,
    async start() {
      const gw = await startGateway(config)
      gateways.push(gw)
      return gw
    },
  }
}

const eventNamed = (gw: StartedGateway, name: string) => gw.events().filter((e) => e.event === name)

async function keysIn(url: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    return await client.dbsize()
  } finally {
    client.disconnect()
  }
}

/** Sends `n` requests one after the other, alternating over the gateways. */
async function sequence(gws: readonly StartedGateway[], token: string, n: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < n; i++) statuses.push((await send(gws[i % gws.length].url, '/rate/x', { headers: bearer(token) })).status)
  return statuses
}

/** Keeps sending (any client) until the gateway reports that Redis is back. */
async function untilRecovered(gw: StartedGateway, token: string, what: string): Promise<void> {
  await eventually(async () => {
    await send(gw.url, '/rate/x', { headers: bearer(token) })
    return eventNamed(gw, 'limits.store_recovered').length > 0 ? true : undefined
  }, what)
}

test('Redis killed under two gateways: each keeps limiting with its local limiter, and both share Redis again once it restarts', async (t) => {
  // A generous command timeout: while Redis is up, a loaded machine must not turn a slow answer into
  // an outage. A killed Redis fails calls at once (no offline queue), whatever the timeout.
  const s = await setup(t, { commandTimeoutMs: 2000 })
  if (!s) return
  const [a, b] = [await s.start(), await s.start()]
  const sign = (client: string) => s.ks.sign({ client_id: client, scope: 'read' })

  // Redis up: one shared limit, whichever gateway a request goes to.
  assert.deepEqual(await sequence([a, b], await sign('before'), 7), [200, 200, 200, 200, 200, 429, 429])
  assert.ok((await keysIn(s.redis.url)) > 0, 'the counters live in Redis')

  await s.redis.stop()
  // Redis gone: every request is still answered, and each gateway enforces the limit on its own
  // (fallback-memory: per instance, so a client may get the limit once per gateway).
  const during = await sign('during')
  assert.deepEqual(await sequence([a], during, 7), [200, 200, 200, 200, 200, 429, 429])
  assert.deepEqual(await sequence([b], during, 7), [200, 200, 200, 200, 200, 429, 429])
  for (const gw of [a, b]) {
    const down = await gw.waitFor((l) => l.event === 'limits.store_unavailable')
    assert.equal(down.onStoreError, 'fallback-memory')
    assert.equal(typeof down.error, 'string')
    assert.doesNotMatch(String(down.error), /redis:\/\//, 'the event never carries the Redis URL')
  }
  assert.equal(s.up.received.length, 15)

  await s.redis.start()
  const probe = await sign('probe')
  await untilRecovered(a, probe, 'gateway A to report Redis recovered')
  await untilRecovered(b, probe, 'gateway B to report Redis recovered')
  for (const gw of [a, b]) {
    assert.equal(eventNamed(gw, 'limits.store_unavailable').length, 1, 'one event per outage, not one per request')
    assert.equal(eventNamed(gw, 'limits.store_recovered').length, 1)
  }
  // Shared again: a new client gets five in total across both gateways, not five on each.
  assert.deepEqual(await sequence([a, b], await sign('after'), 7), [200, 200, 200, 200, 200, 429, 429])
  assert.ok((await keysIn(s.redis.url)) > 0, 'the restarted Redis holds counters again')
})

test('onStoreError deny: 503 ERR_LIMITS_UNAVAILABLE while Redis is down, admitted again once it is back', async (t) => {
  const s = await setup(t, { onStoreError: 'deny', commandTimeoutMs: 2000 })
  if (!s) return
  const gw = await s.start()
  const token = await s.ks.sign({ client_id: 'a', scope: 'read' })
  assert.equal((await send(gw.url, '/rate/x', { headers: bearer(token) })).status, 200)

  await s.redis.stop()
  const refused: Reply[] = []
  for (let i = 0; i < 3; i++) refused.push(await send(gw.url, '/rate/x', { headers: bearer(token) }))
  for (const r of refused) {
    assert.equal(r.status, 503)
    assert.equal(r.headers['content-type'], 'application/problem+json')
    assert.equal(r.body.code, 'ERR_LIMITS_UNAVAILABLE')
    assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/)
  }
  assert.equal(s.up.received.length, 1, 'nothing passes while the limits cannot be checked')
  const down = await gw.waitFor((l) => l.event === 'limits.store_unavailable')
  assert.equal(down.onStoreError, 'deny')
  await gw.waitFor((l) => l.event === 'limits.unavailable' && l.code === 'ERR_LIMITS_UNAVAILABLE')
  // The outage is also a metric, on the metrics listener.
  const metricsUrl = String(gw.lines.find((l) => l.msg === 'listening')!.metrics)
  const scrape = async () => (await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) })).text()
  let text = await scrape()
  assert.match(text, /^gateway_limits_store_up 0$/m)
  assert.match(text, /^gateway_limits_store_events_total\{event="limits\.store_unavailable"\} 1$/m)
  assert.match(text, /^gateway_denials_total\{code="ERR_LIMITS_UNAVAILABLE"\} 3$/m)

  await s.redis.start()
  await untilRecovered(gw, token, 'the gateway to report Redis recovered')
  const ok = await send(gw.url, '/rate/x', { headers: bearer(token) })
  assert.equal(ok.status, 200)
  text = await scrape()
  assert.match(text, /^gateway_limits_store_up 1$/m)
  assert.match(text, /^gateway_limits_store_events_total\{event="limits\.store_recovered"\} 1$/m)
})

test('a hung Redis (SIGSTOP, connections open, no answers) costs requests one command timeout, never a hang', async (t) => {
  const s = await setup(t, { commandTimeoutMs: 300 })
  if (!s) return
  const gw = await s.start()
  const token = await s.ks.sign({ client_id: 'a', scope: 'read' })
  assert.equal((await send(gw.url, '/rate/x', { headers: bearer(token) })).status, 200)

  s.redis.pause()
  // Every request is answered (each is bounded by the client's timeout): the local limiter decides.
  const during = await sequence([gw], await s.ks.sign({ client_id: 'b', scope: 'read' }), 7)
  assert.deepEqual(during, [200, 200, 200, 200, 200, 429, 429])
  const down = await gw.waitFor((l) => l.event === 'limits.store_unavailable')
  assert.equal(down.onStoreError, 'fallback-memory')

  s.redis.resume()
  await untilRecovered(gw, token, 'the gateway to report Redis recovered after SIGCONT')
  // Decided by Redis again: a new client's counter appears there.
  const keysBefore = await keysIn(s.redis.url)
  const after = await sequence([gw], await s.ks.sign({ client_id: 'c', scope: 'read' }), 6)
  assert.deepEqual(after, [200, 200, 200, 200, 200, 429])
  assert.equal(await keysIn(s.redis.url), keysBefore + 1)
})
