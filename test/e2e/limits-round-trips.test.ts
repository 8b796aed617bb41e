import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer } from '../helpers/keys.js'
import { bearer, send } from '../helpers/limits.js'
import { startRedisServer, uniquePrefix } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'

/** Script calls (EVALSHA + EVAL) the Redis server has answered so far. */
async function scriptCalls(url: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    const info = await client.info('commandstats')
    let calls = 0
    for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2])
    return calls
  } finally {
    client.disconnect()
  }
}

test('with Redis, a request whose token is already verified costs one round trip for its IP policy, client policy and brute-force guard together', async (t) => {
  // A private redis-server, so nothing else's commands are counted.
  const redis = await startRedisServer(t)
  if (!redis) return
  const ks = await startKeyServer()
  const up = await startUpstream()
  let gw: StartedGateway | undefined
  t.after(async () => {
    await gw?.stop()
    await redis.close()
    await up.close()
    await ks.close()
  })
  gw = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'up', url: up.url }],
      routes: [{ id: 'r', path: '/r', methods: ['GET'], upstream: 'up', auth: 'required', limits: ['per-ip', 'per-client'] }],
      limits: {
        store: { type: 'redis', redis: { url: redis.url, keyPrefix: uniquePrefix('rtt') } },
        policies: [
          { id: 'per-ip', key: ['ip'], rate: { limit: 1000, periodSec: 60 } },
          { id: 'per-client', key: ['client'], rate: { limit: 3, periodSec: 3600 } },
        ],
      },
    }),
  )
  const token = await ks.sign({ client_id: 'c1' })
  // The first two requests: the token is not in the verified-token cache yet (it is admitted on
  // its second verification), so the guard and IP policy run before authn (no signature
  // verification is spent on a blocked client) and the client policy after it: two calls each.
  const before = await scriptCalls(redis.url)
  assert.equal((await send(gw.url, '/r', { headers: bearer(token) })).status, 200)
  assert.equal((await scriptCalls(redis.url)) - before, 2)
  assert.equal((await send(gw.url, '/r', { headers: bearer(token) })).status, 200)
  const afterFirst = await scriptCalls(redis.url)
  assert.equal(afterFirst - before, 4)
  // Later requests with the same (cached) token: one call each, and the limits still hold.
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await send(gw.url, '/r', { headers: bearer(token) })).status)
  assert.deepEqual(statuses, [200, 429, 429], 'the per-client limit of 3 still holds')
  assert.equal((await scriptCalls(redis.url)) - afterFirst, 3, 'one script call per request')
  assert.equal(up.received.length, 3)
})
