import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { ServerResponse } from 'node:http'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, eventually, rateLimitFields, send, sleep, statusCounts, type Reply } from '../helpers/limits.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Limits on one gateway with the memory store, end to end: rates, per-client isolation, a per-IP
 * policy that acts before authentication, a daily quota, a concurrency cap, tiers from a token
 * claim, the RateLimit fields, and sampling of limits.exceeded events. Several client addresses
 * are simulated by binding client sockets to 127.0.0.x.
 */

const issuerOf = (ks: KeyServer) => ({ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] })
const route = (id: string, limits: string[]) => ({ id, path: `/${id}/**`, methods: ['GET'], upstream: 'up', auth: 'required', limits })
const reached = (up: RecordingUpstream, prefix: string) => up.received.filter((r) => r.url.startsWith(prefix)).length
const all = <T>(n: number, f: (i: number) => Promise<T>) => Promise.all(Array.from({ length: n }, (_, i) => f(i)))

function assertLimited(r: Reply): void {
  assert.equal(r.status, 429)
  assert.equal(r.headers['content-type'], 'application/problem+json')
  assert.equal(r.body.code, 'ERR_LIMITS_EXCEEDED')
  assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After is delay-seconds, at least 1')
}

describe('limits with the memory store', () => {
  let ks: KeyServer
  let up: RecordingUpstream
  let gw: StartedGateway
  /** Responses the upstream holds back (route /slow), to keep requests in flight. */
  const parked: ServerResponse[] = []
  const releaseParked = () => {
    for (const res of parked.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
  }

  before(async () => {
    ks = await startKeyServer()
    up = await startUpstream((req, res) => {
      if (req.url!.startsWith('/slow')) return void parked.push(res)
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    })
    gw = await startGateway(
      baseConfig({
        issuers: [issuerOf(ks)],
        upstreams: [{ id: 'up', url: up.url }],
        routes: [
          route('rate', ['per-client']),
          route('ip', ['per-ip']),
          route('quota', ['daily']),
          route('slow', ['in-flight']),
          route('tier', ['by-plan']),
          route('flood', ['trickle']),
        ],
        limits: {
          policies: [
            { id: 'per-client', key: ['client'], rate: { limit: 5, periodSec: 60 } },
            { id: 'per-ip', key: ['ip'], rate: { limit: 3, periodSec: 60 } },
            { id: 'daily', key: ['client'], quotas: [{ limit: 4, period: 'day' }] },
            { id: 'in-flight', key: ['client'], concurrency: { limit: 3 } },
            {
              id: 'by-plan',
              key: ['client'],
              rate: { limit: 2, periodSec: 60 },
              tiers: { claim: 'plan', values: { gold: { rate: { limit: 6, periodSec: 60 } } } },
            },
            { id: 'trickle', key: ['client'], rate: { limit: 1, periodSec: 3600 } },
          ],
        },
      }),
    )
  })
  after(async () => {
    releaseParked()
    await gw?.stop()
    await up?.close()
    await ks?.close()
  })

  test('six simultaneous requests against a limit of five: exactly five reach the upstream, the sixth gets 429 with Retry-After and RateLimit fields', async () => {
    const token = await ks.sign({ client_id: 'a', scope: 'read' })
    const replies = await all(6, () => send(gw.url, '/rate/x', { headers: bearer(token) }))
    assert.deepEqual(statusCounts(replies), { 200: 5, 429: 1 })
    assert.equal(reached(up, '/rate'), 5)

    // Admitted responses carry both fields; the remaining counts are 4, 3, 2, 1, 0 in some order.
    const ok = replies.filter((r) => r.status === 200).map((r) => rateLimitFields(r)!)
    for (const f of ok) assert.deepEqual(f.policy, [{ name: 'per-client', q: 5, w: 60 }])
    assert.deepEqual(ok.map((f) => f.limit[0].r).sort(), [0, 1, 2, 3, 4])

    const denied = replies.find((r) => r.status === 429)!
    assertLimited(denied)
    const f = rateLimitFields(denied)!
    assert.deepEqual(f.policy, [{ name: 'per-client', q: 5, w: 60 }])
    assert.equal(f.limit.length, 1)
    assert.equal(f.limit[0].name, 'per-client')
    assert.equal(f.limit[0].r, 0)
    // 5 per 60 s: one request comes back every 12 s, so the wait is at most 12 s; t says the same.
    const retryAfter = Number(denied.headers['retry-after'])
    assert.ok(retryAfter >= 1 && retryAfter <= 12, `Retry-After ${retryAfter}`)
    assert.equal(f.limit[0].t, retryAfter)

    const again = await send(gw.url, '/rate/x', { headers: bearer(token) })
    assertLimited(again)
    assert.equal(reached(up, '/rate'), 5, 'a request over the limit never reaches the upstream')
  })

  test("one client's exhausted limit does not limit another client", async () => {
    const tokenA = await ks.sign({ client_id: 'a', scope: 'read' })
    const tokenB = await ks.sign({ client_id: 'b', scope: 'read' })
    assertLimited(await send(gw.url, '/rate/x', { headers: bearer(tokenA) }))
    const before = reached(up, '/rate')
    const replies = await all(6, () => send(gw.url, '/rate/x', { headers: bearer(tokenB) }))
    assert.deepEqual(statusCounts(replies), { 200: 5, 429: 1 })
    assert.equal(reached(up, '/rate') - before, 5)
  })

  test('a per-address policy stops an address before authentication and leaves other addresses alone', async () => {
    const token = await ks.sign({ client_id: 'a', scope: 'read' })
    // Without a token authn answers 401, but each attempt still counts against the address.
    for (let i = 0; i < 3; i++) {
      const r = await send(gw.url, '/ip/x', { localAddress: '127.0.0.2' })
      assert.equal(r.status, 401)
      assert.equal(r.body.code, 'ERR_AUTHN_MISSING')
    }
    // The fourth is refused by the limit before authn even looks for a token.
    const fourth = await send(gw.url, '/ip/x', { localAddress: '127.0.0.2' })
    assertLimited(fourth)
    assert.deepEqual(rateLimitFields(fourth)!.policy, [{ name: 'per-ip', q: 3, w: 60 }])
    assertLimited(await send(gw.url, '/ip/x', { localAddress: '127.0.0.2', headers: bearer(token) }))
    assert.equal(reached(up, '/ip'), 0)

    const other = await send(gw.url, '/ip/x', { localAddress: '127.0.0.3', headers: bearer(token) })
    assert.equal(other.status, 200)
    assert.equal(reached(up, '/ip'), 1)
  })

  test('a daily quota admits its limit and then refuses until the next UTC day', async (t) => {
    const day = new Date().toISOString().slice(0, 10)
    const token = await ks.sign({ client_id: 'q', scope: 'read' })
    const replies = await all(6, () => send(gw.url, '/quota/x', { headers: bearer(token) }))
    const secondsToMidnight = (Date.UTC(Number(day.slice(0, 4)), Number(day.slice(5, 7)) - 1, Number(day.slice(8, 10)) + 1) - Date.now()) / 1000
    if (new Date().toISOString().slice(0, 10) !== day) return t.skip('the UTC day changed during the test')

    assert.deepEqual(statusCounts(replies), { 200: 4, 429: 2 })
    assert.equal(reached(up, '/quota'), 4)
    const denied = replies.find((r) => r.status === 429)!
    assertLimited(denied)
    const f = rateLimitFields(denied)!
    assert.deepEqual(f.policy, [{ name: 'daily.day', q: 4, w: 86400 }])
    assert.equal(f.limit[0].r, 0)
    // The quota comes back at 00:00 UTC: Retry-After and t point there (give or take the request's own time).
    const retryAfter = Number(denied.headers['retry-after'])
    assert.ok(Math.abs(retryAfter - secondsToMidnight) <= 120, `Retry-After ${retryAfter}, ${Math.round(secondsToMidnight)} s to midnight`)
    assert.equal(f.limit[0].t, retryAfter)
  })

  test('a concurrency cap of three lets exactly three of six simultaneous requests reach a slow upstream, and slots come back', async () => {
    const token = await ks.sign({ client_id: 'c', scope: 'read' })
    const answered: Reply[] = []
    const pending = all(6, () => send(gw.url, '/slow/x', { headers: bearer(token) }).then((r) => (answered.push(r), r)))
    // Every request ends up either held by the upstream or answered by the gateway.
    await eventually(async () => (parked.length + answered.length >= 6 ? true : undefined), 'each request to be held upstream or answered')
    assert.equal(parked.length, 3)
    assert.equal(reached(up, '/slow'), 3)
    releaseParked()
    const replies = await pending
    assert.deepEqual(statusCounts(replies), { 200: 3, 429: 3 })
    const denied = replies.find((r) => r.status === 429)!
    assertLimited(denied)
    assert.equal(denied.headers['retry-after'], '1')
    const f = rateLimitFields(denied)!
    assert.deepEqual(f.policy, [{ name: 'in-flight.concurrency', q: 3, qu: 'concurrent-requests' }])
    assert.equal(f.limit[0].r, 0)

    // Every slot was given back when its response closed: three in flight are admitted again.
    const second = all(3, () => send(gw.url, '/slow/x', { headers: bearer(token) }))
    await eventually(async () => (parked.length >= 3 ? true : undefined), 'three more requests at the upstream')
    releaseParked()
    assert.deepEqual(statusCounts(await second), { 200: 3 })
    assert.equal(reached(up, '/slow'), 6)
  })

  test('the tier named by the plan claim sets the limit: gold gets six, an unknown tier and no tier get the base two', async () => {
    const gold = await ks.sign({ client_id: 'gold-co', scope: 'read', plan: 'gold' })
    const silver = await ks.sign({ client_id: 'silver-co', scope: 'read', plan: 'silver' })
    const none = await ks.sign({ client_id: 'plain-co', scope: 'read' })
    const [g, s, n] = await Promise.all([gold, silver, none].map((tok) => all(8, () => send(gw.url, '/tier/x', { headers: bearer(tok) }))))
    assert.deepEqual(statusCounts(g), { 200: 6, 429: 2 })
    assert.deepEqual(statusCounts(s), { 200: 2, 429: 6 })
    assert.deepEqual(statusCounts(n), { 200: 2, 429: 6 })
    assert.equal(reached(up, '/tier'), 10)
    assert.deepEqual(rateLimitFields(g.find((r) => r.status === 200)!)!.policy, [{ name: 'by-plan', q: 6, w: 60 }])
    assert.deepEqual(rateLimitFields(s.find((r) => r.status === 200)!)!.policy, [{ name: 'by-plan', q: 2, w: 60 }])
  })

  test('a flood of 200 refused requests writes a few sampled limits.exceeded events that account for every refusal', async () => {
    const addr = '127.0.0.5'
    const token = await ks.sign({ client_id: 'flood', scope: 'read' })
    const opts = { localAddress: addr, headers: bearer(token) }
    assert.equal((await send(gw.url, '/flood/x', opts)).status, 200)
    const started = Date.now()
    const replies: Reply[] = []
    for (let batch = 0; batch < 8; batch++) replies.push(...(await all(25, () => send(gw.url, '/flood/x', opts))))
    const floodSec = (Date.now() - started) / 1000
    assert.deepEqual(statusCounts(replies), { 429: 200 })
    assert.equal(reached(up, '/flood'), 1)

    // One more refusal in a later second carries the count of those suppressed before it.
    await sleep(1100)
    assertLimited(await send(gw.url, '/flood/x', opts))
    const mine = () => gw.events().filter((e) => e.event === 'limits.exceeded' && e.clientIp === addr)
    const total = (events: Array<Record<string, unknown>>) => events.length + events.reduce((n, e) => n + (Number(e.suppressed) || 0), 0)
    const events = await eventually(async () => (total(mine()) >= 201 ? mine() : undefined), 'events accounting for 201 refusals')
    assert.equal(total(events), 201, 'every refusal is either an event or counted in one')
    // At most one event per address and second (perKeyPerSec: 1): the flood lasted floodSec.
    assert.ok(events.length <= Math.ceil(floodSec) + 2, `${events.length} events for a flood of ${floodSec} s`)
    assert.ok(events.some((e) => Number(e.suppressed) > 0))
    for (const e of events) {
      assert.equal(e.code, 'ERR_LIMITS_EXCEEDED')
      assert.equal(e.reason, 'limit:trickle')
      assert.equal(e.route, 'flood')
    }
  })
})

describe('limits with RateLimit fields turned off', () => {
  test('headers.rateLimit false: no RateLimit or RateLimit-Policy on admitted or refused responses, Retry-After stays', async (t) => {
    const ks = await startKeyServer()
    const up = await startUpstream()
    const gw = await startGateway(
      baseConfig({
        issuers: [issuerOf(ks)],
        upstreams: [{ id: 'up', url: up.url }],
        routes: [route('rate', ['per-client'])],
        limits: { headers: { rateLimit: false }, policies: [{ id: 'per-client', key: ['client'], rate: { limit: 1, periodSec: 60 } }] },
      }),
    )
    t.after(async () => {
      await gw.stop()
      await up.close()
      await ks.close()
    })
    const token = await ks.sign({ client_id: 'a', scope: 'read' })
    const ok = await send(gw.url, '/rate/x', { headers: bearer(token) })
    const denied = await send(gw.url, '/rate/x', { headers: bearer(token) })
    assert.equal(ok.status, 200)
    assertLimited(denied)
    for (const r of [ok, denied]) {
      assert.equal(r.headers.ratelimit, undefined)
      assert.equal(r.headers['ratelimit-policy'], undefined)
    }
    assert.equal(up.received.length, 1)
  })
})
