import { after, before, describe, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, rateLimitFields, send, statusCounts } from '../helpers/limits.js'
import { deleteByPrefix, requireRedis, uniquePrefix } from '../helpers/redis.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Three gateway processes sharing one real Redis (REDIS_URL, default redis://127.0.0.1:6379):
 * limits hold across the cluster, exactly. Every test writes under its own key prefix and
 * deletes it afterwards; the shared Redis is never flushed or stopped. Without Redis the tests
 * are skipped visibly (they fail with PORTCULLIS_REQUIRE_SERVICES=1).
 */

const issuerOf = (ks: KeyServer) => ({ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] })
const reached = (up: RecordingUpstream, prefix: string) => up.received.filter((r) => r.url.startsWith(prefix)).length

function clusterConfig(ks: KeyServer, up: RecordingUpstream, redisUrl: string, keyPrefix: string) {
  return baseConfig({
    issuers: [issuerOf(ks)],
    upstreams: [{ id: 'up', url: up.url }],
    routes: [
      { id: 'rate', path: '/rate/**', methods: ['GET'], upstream: 'up', auth: 'required', limits: ['hundred'] },
      { id: 'quota', path: '/quota/**', methods: ['GET'], upstream: 'up', auth: 'required', limits: ['monthly'] },
    ],
    limits: {
      store: {
        type: 'redis',
        // "deny" rather than the default local fallback, and a generous command timeout: on a busy
        // two-core machine a slow reply must show up as a 503 here, never as a silent local admit
        // that would make the count look wrong for another reason than the one under test.
        redis: { url: redisUrl, keyPrefix, commandTimeoutMs: 10_000, onStoreError: 'deny' },
      },
      policies: [
        { id: 'hundred', key: ['client'], rate: { limit: 100, periodSec: 3600 } },
        { id: 'monthly', key: ['client'], quotas: [{ limit: 5, period: 'month' }] },
      ],
    },
  })
}

describe('limits across three gateways sharing one Redis', () => {
  let redisUrl: string | undefined
  let ks: KeyServer
  let up: RecordingUpstream
  const prefix = uniquePrefix('limits-cluster')
  const gateways: StartedGateway[] = []

  before(async () => {
    ks = await startKeyServer()
    up = await startUpstream()
  })
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    if (redisUrl) await deleteByPrefix(redisUrl, prefix)
    await up?.close()
    await ks?.close()
  })

  /** The three gateways, started on the first test that has Redis. */
  async function cluster(t: TestContext): Promise<StartedGateway[] | undefined> {
    redisUrl ??= await requireRedis(t)
    if (!redisUrl) return undefined
    while (gateways.length < 3) gateways.push(await startGateway(clusterConfig(ks, up, redisUrl, prefix)))
    return gateways.slice(0, 3)
  }

  test('1,000 concurrent requests spread over three gateways against a limit of 100 admit exactly 100', async (t) => {
    const gws = await cluster(t)
    if (!gws) return
    const token = await ks.sign({ client_id: 'a', scope: 'read' })
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => send(gws[i % 3].url, '/rate/x', { headers: bearer(token), timeoutMs: 60_000 })))
    assert.deepEqual(statusCounts(replies), { 200: 100, 429: 900 })
    assert.equal(reached(up, '/rate'), 100)
    // Each admitted request saw a different remaining count: 99 … 0, one Redis counter for all three.
    const remaining = replies.filter((r) => r.status === 200).map((r) => rateLimitFields(r)!.limit[0].r)
    assert.deepEqual(
      remaining.sort((x, y) => x - y),
      Array.from({ length: 100 }, (_, i) => i),
    )
    for (const r of replies.filter((x) => x.status === 429)) assert.equal(r.body.code, 'ERR_LIMITS_EXCEEDED')
  })

  test("one client's exhaustion on the cluster never limits another client on any gateway", async (t) => {
    const gws = await cluster(t)
    if (!gws) return
    const exhausted = await ks.sign({ client_id: 'a', scope: 'read' })
    const fresh = await ks.sign({ client_id: 'b', scope: 'read' })
    const before = reached(up, '/rate')
    for (const gw of gws) {
      assert.equal((await send(gw.url, '/rate/x', { headers: bearer(exhausted) })).status, 429)
      const ok = await send(gw.url, '/rate/x', { headers: bearer(fresh) })
      assert.equal(ok.status, 200)
    }
    assert.equal(reached(up, '/rate') - before, 3)
  })

  test('a quota consumed through one gateway stays consumed after it stops and another starts on the same Redis', async (t) => {
    const gws = await cluster(t)
    if (!gws) return
    const month = new Date().toISOString().slice(0, 7)
    const token = await ks.sign({ client_id: 'q', scope: 'read' })
    for (let i = 0; i < 3; i++) assert.equal((await send(gws[0].url, '/quota/x', { headers: bearer(token) })).status, 200)

    const stopped = gateways.shift()!
    await stopped.stop()
    const replacement = await startGateway(clusterConfig(ks, up, redisUrl!, prefix))
    gateways.push(replacement)

    const replies = []
    for (let i = 0; i < 3; i++) replies.push(await send(replacement.url, '/quota/x', { headers: bearer(token) }))
    if (new Date().toISOString().slice(0, 7) !== month) return t.skip('the UTC month changed during the test')
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 429],
    )
    assert.deepEqual(
      replies.map((r) => rateLimitFields(r)!.limit[0].r),
      [1, 0, 0],
    )
    assert.equal(replies[2].body.code, 'ERR_LIMITS_EXCEEDED')
    assert.equal(reached(up, '/quota'), 5)
  })
})
