import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, send, sleep, type Reply } from '../helpers/limits.js'
import { deleteByPrefix, requireRedis, uniquePrefix } from '../helpers/redis.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Brute-force protection against the built gateway: failed authentications from one address are
 * throttled with a growing Retry-After, then locked; other addresses are unaffected; a valid
 * token does not unlock (or reset) an address that is guessing. Client addresses are simulated
 * by binding client sockets to 127.0.0.x.
 *
 * Small thresholds keep the test quick: 3 failures tolerated, then blocks of 30 s, 60 s, 120 s,
 * 240 s (doubling), and a 900 s lockout at 8. The blocks are long on purpose: a busy machine
 * pausing between two requests must not let a block expire before the next one arrives.
 */
const BRUTE_FORCE = {
  threshold: 3,
  windowSec: 300,
  throttle: { baseDelayMs: 30_000, maxDelayMs: 600_000 },
  lockout: { after: 8, ttlSec: 900 },
}
const ATTACKER = '127.0.0.2'
const GOOD = '127.0.0.3'

function config(ks: KeyServer, up: RecordingUpstream, store?: Record<string, unknown>) {
  return baseConfig({
    issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
    upstreams: [{ id: 'up', url: up.url }],
    routes: [{ id: 'api', path: '/api/**', methods: ['GET'], upstream: 'up', auth: 'required' }],
    limits: { bruteForce: BRUTE_FORCE, ...(store ? { store } : {}) },
  })
}

/** A well-formed token whose signature is wrong, claiming the given client id. */
async function badToken(ks: KeyServer, clientId: string): Promise<string> {
  const token = await ks.sign({ client_id: clientId, scope: 'read' })
  const at = token.lastIndexOf('.') + 10
  return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1)
}

async function fixture(t: TestContext) {
  const ks = await startKeyServer()
  const up = await startUpstream()
  const gateways: StartedGateway[] = []
  t.after(async () => {
    await Promise.all(gateways.map((g) => g.stop()))
    await up.close()
    await ks.close()
  })
  return { ks, up, gateways }
}

/**
 * 50 bad tokens from the attacker's address, one after the other, alternating over the gateways.
 * Each claims a different account, so only the per-address count can catch them.
 */
async function attack(ks: KeyServer, gws: readonly StartedGateway[]): Promise<Reply[]> {
  const replies: Reply[] = []
  for (let i = 0; i < 50; i++) {
    const token = await badToken(ks, `victim-${i}`)
    replies.push(await send(gws[i % gws.length].url, '/api/x', { localAddress: ATTACKER, headers: bearer(token) }))
  }
  return replies
}

function assertThrottledThenLocked(replies: readonly Reply[]): number[] {
  // The first three failures are tolerated and the fourth starts the throttle: all four are
  // answered by authn. From then on the address is refused before authn, and each attempt
  // while blocked counts as one more failure.
  assert.deepEqual(
    replies.map((r) => r.status),
    [...Array(4).fill(401), ...Array(46).fill(429)],
  )
  for (const r of replies.slice(0, 4)) assert.equal(r.body.code, 'ERR_AUTHN_INVALID_TOKEN')
  const waits = replies.slice(4).map((r) => {
    assert.equal(r.body.code, 'ERR_LIMITS_EXCEEDED')
    assert.equal(r.headers['content-type'], 'application/problem+json')
    // A brute-force refusal tells the client how long to wait, and nothing about the policy.
    assert.equal(r.headers.ratelimit, undefined)
    return Number(r.headers['retry-after'])
  })
  for (let i = 1; i < waits.length; i++) assert.ok(waits[i] >= waits[i - 1], `Retry-After grows: ${waits.join(',')}`)
  assert.ok(waits[0] < waits[waits.length - 1])
  assert.equal(waits[waits.length - 1], 900, 'locked for lockout.ttlSec')
  return waits
}

test('50 bad tokens from one address: throttled with a growing Retry-After, then locked; other addresses are unaffected and a valid token does not unlock it', async (t) => {
  const { ks, up, gateways } = await fixture(t)
  const gw = await startGateway(config(ks, up))
  gateways.push(gw)

  const waits = assertThrottledThenLocked(await attack(ks, [gw]))
  // Doubling from baseDelayMs (30 s, the fourth failure's block, answered 401), then the lockout.
  assert.deepEqual(waits.slice(0, 4), [60, 120, 240, 900])

  const lockout = await gw.waitFor((l) => l.event === 'limits.lockout')
  assert.equal(lockout.target, 'address')
  assert.equal(lockout.clientIp, ATTACKER)
  await sleep(200)
  assert.equal(gw.events().filter((e) => e.event === 'limits.lockout').length, 1, 'one lockout, one event')
  assert.equal(up.received.length, 0, 'no guess reached the upstream')

  // A good client elsewhere is unaffected.
  const good = await ks.sign({ client_id: 'good', scope: 'read' })
  const ok = await send(gw.url, '/api/x', { localAddress: GOOD, headers: bearer(good) })
  assert.equal(ok.status, 200)
  assert.equal(up.received.length, 1)

  // The locked address stays locked with a valid token (which must not reset it), and after it.
  const own = await ks.sign({ client_id: 'attacker-own', scope: 'read' })
  const withValid = await send(gw.url, '/api/x', { localAddress: ATTACKER, headers: bearer(own) })
  assert.equal(withValid.status, 429)
  assert.equal(withValid.body.code, 'ERR_LIMITS_EXCEEDED')
  assert.equal(withValid.headers['retry-after'], '900')
  const next = await send(gw.url, '/api/x', { localAddress: ATTACKER })
  assert.equal(next.status, 429)
  assert.equal(up.received.length, 1)
})

test('a successful authentication does not reset the failure count of its address', async (t) => {
  const { ks, up, gateways } = await fixture(t)
  const gw = await startGateway(config(ks, up))
  gateways.push(gw)
  const from = { localAddress: '127.0.0.4' }
  for (let i = 0; i < 3; i++) {
    const r = await send(gw.url, '/api/x', { ...from, headers: bearer(await badToken(ks, `acct-${i}`)) })
    assert.equal(r.status, 401)
  }
  // At the threshold, not over it: a valid token from the same address is served…
  const valid = await send(gw.url, '/api/x', { ...from, headers: bearer(await ks.sign({ client_id: 'mine', scope: 'read' })) })
  assert.equal(valid.status, 200)
  // …but the count stands: one more failure crosses the threshold, and the address is throttled.
  assert.equal((await send(gw.url, '/api/x', { ...from, headers: bearer(await badToken(ks, 'acct-3')) })).status, 401)
  const throttled = await send(gw.url, '/api/x', { ...from, headers: bearer(await badToken(ks, 'acct-4')) })
  assert.equal(throttled.status, 429)
  assert.equal(throttled.body.code, 'ERR_LIMITS_EXCEEDED')
})

test('on two gateways sharing Redis, an attack spread over both is throttled and locked on both, with one lockout event', async (t) => {
  const redisUrl = await requireRedis(t)
  if (!redisUrl) return
  const { ks, up, gateways } = await fixture(t)
  const keyPrefix = uniquePrefix('brute-force')
  t.after(() => deleteByPrefix(redisUrl, keyPrefix))
  const store = { type: 'redis', redis: { url: redisUrl, keyPrefix, commandTimeoutMs: 10_000 } }
  gateways.push(await startGateway(config(ks, up, store)), await startGateway(config(ks, up, store)))

  assertThrottledThenLocked(await attack(ks, gateways))
  await Promise.race(gateways.map((g) => g.waitFor((l) => l.event === 'limits.lockout')))
  await sleep(300)
  const lockouts = gateways.flatMap((g) => g.events().filter((e) => e.event === 'limits.lockout'))
  assert.equal(lockouts.length, 1, 'the store says which instance locked it: announced once')
  assert.equal(lockouts[0].clientIp, ATTACKER)

  const good = await ks.sign({ client_id: 'good', scope: 'read' })
  for (const gw of gateways) {
    assert.equal((await send(gw.url, '/api/x', { localAddress: GOOD, headers: bearer(good) })).status, 200)
    assert.equal((await send(gw.url, '/api/x', { localAddress: ATTACKER, headers: bearer(good) })).status, 429)
  }
  assert.equal(up.received.length, 2)
})

test('bad tokens naming one client from many addresses lock that account (one event), yet its valid tokens, cached or new, are served', async (t) => {
  // The account is read from tokens that fail, so anyone can name any client: refusing by it would
  // let a few forged tokens lock every user of an OAuth client out of the gateway.
  const { ks, up, gateways } = await fixture(t)
  const gw = await startGateway(config(ks, up))
  gateways.push(gw)
  const cached = await ks.sign({ client_id: 'shared-app', scope: 'read' })
  for (let i = 0; i < 2; i++) assert.equal((await send(gw.url, '/api/x', { localAddress: '127.0.0.20', headers: bearer(cached) })).status, 200)

  // Three addresses, three failures each (all within each address's tolerance): 9 for the account.
  for (const from of ['127.0.0.10', '127.0.0.11', '127.0.0.12']) {
    for (let i = 0; i < 3; i++) {
      const r = await send(gw.url, '/api/x', { localAddress: from, headers: bearer(await badToken(ks, 'shared-app')) })
      assert.equal(r.status, 401)
    }
  }
  const lockout = await gw.waitFor((l) => l.event === 'limits.lockout')
  assert.equal(lockout.target, 'account')
  assert.equal(lockout.account, `${ks.issuer} shared-app`)

  // The client's users keep working, with a token already cached and with a new one, again and again.
  const fresh = await ks.sign({ client_id: 'shared-app', scope: 'read' })
  for (let i = 0; i < 3; i++) {
    assert.equal((await send(gw.url, '/api/x', { localAddress: '127.0.0.20', headers: bearer(cached) })).status, 200)
    assert.equal((await send(gw.url, '/api/x', { localAddress: '127.0.0.21', headers: bearer(fresh) })).status, 200)
  }
  // A further bad token naming the account is answered by authn, not refused by the account.
  const more = await send(gw.url, '/api/x', { localAddress: '127.0.0.13', headers: bearer(await badToken(ks, 'shared-app')) })
  assert.equal(more.status, 401)
  assert.equal(up.received.length, 2 + 6)
})
