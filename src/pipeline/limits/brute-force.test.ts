import assert from 'node:assert/strict'
import { test } from 'node:test'
import { deleteByPrefix, requireRedis, uniquePrefix } from '../../../test/helpers/redis.js'
import { countsAsAuthFailure, createBruteForceTracker, type BruteForceTracker, type LockoutEvent } from './brute-force.js'
import type { BruteForceConfig } from './config.js'
import { addressKey, keyValue } from './keys.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore } from './redis-store.js'
import type { LimitStore } from './store.js'

const T0 = Date.UTC(2031, 0, 15, 12)
const CONFIG: BruteForceConfig = {
  enabled: true,
  threshold: 10,
  windowSec: 300,
  throttle: { baseDelayMs: 1000, maxDelayMs: 60_000 },
  lockout: { after: 30, ttlSec: 900 },
  perAccount: true,
}
const ISS = 'https://idp.example'
/** An unsigned token claiming `payload` (issued by ISS unless it says otherwise). */
const jwt = (payload: Record<string, unknown>) => `Bearer e30.${Buffer.from(JSON.stringify({ iss: ISS, ...payload })).toString('base64url')}.c2ln`

const asAttempt = (clientIp: string, authorization?: string) => ({ clientIp, req: { headers: { authorization } } })

function tracker(store: LimitStore, clock: { now: number }, config = CONFIG) {
  const events: LockoutEvent[] = []
  const bf = createBruteForceTracker(config, store, { now: () => clock.now, addressKey: (ip) => addressKey(ip, 64), onLockout: (e) => events.push(e) })
  return { bf, events }
}

/** One attempt with a bad token: the guard first (as the limits stage before authn), then the failure. */
async function attempt(bf: BruteForceTracker, store: LimitStore, now: number, ip: string, authorization?: string): Promise<'401' | '429'> {
  const guards = bf.guards(asAttempt(ip, authorization))
  if (guards !== undefined) {
    const d = await store.check(guards.checks, now)
    bf.observe(d, 0, ip)
    if (!d.allowed) return '429'
  }
  await bf.onDenied({ clientIp: ip, req: { headers: { authorization } } }, 'ERR_AUTHN_INVALID_TOKEN')
  return '401'
}

test('counts bad tokens, malformed credentials and bad keys; not missing credentials nor expired tokens', () => {
  assert.equal(countsAsAuthFailure('ERR_AUTHN_INVALID_TOKEN'), true)
  assert.equal(countsAsAuthFailure('ERR_AUTHN_MALFORMED'), true)
  assert.equal(countsAsAuthFailure('ERR_AUTHN_MISSING'), false)
  assert.equal(countsAsAuthFailure('ERR_AUTHN_EXPIRED'), false)
  assert.equal(countsAsAuthFailure('ERR_AUTHZ_INSUFFICIENT_SCOPE'), false)
  assert.equal(countsAsAuthFailure('ERR_NOT_A_CODE'), false)
})

test('50 bad tokens from one address in a burst: 11 reach authn (10 tolerated, the 11th starts the throttle), then 429 up to a lockout announced once', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const clock = { now: T0 }
  const { bf, events } = tracker(store, clock)
  const answers: string[] = []
  for (let i = 0; i < 50; i++) answers.push(await attempt(bf, store, clock.now, '198.51.100.9', 'Bearer not-a-jwt'))
  assert.deepEqual(answers, [...Array(11).fill('401'), ...Array(39).fill('429')])
  assert.deepEqual(
    events.map((e) => [e.type, e.target, e.clientIp, e.retryAfterMs]),
    [['limits.lockout', 'address', '198.51.100.9', 900_000]],
  )
  // A good client elsewhere is unaffected.
  assert.equal((await store.check(bf.guards(asAttempt('203.0.113.5', jwt({ client_id: 'good' })))!.checks, clock.now)).allowed, true)
})

test('throttling grows: each failure past the threshold doubles Retry-After', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const clock = { now: T0 }
  const { bf } = tracker(store, clock)
  const waits: number[] = []
  for (let i = 0; i < 14; i++) {
    await attempt(bf, store, clock.now, '198.51.100.9')
    const d = await store.check(bf.guards(asAttempt('198.51.100.9', undefined))!.checks, clock.now)
    waits.push(d.retryAfterMs)
    clock.now += d.retryAfterMs // a patient attacker waits out each throttle
  }
  assert.deepEqual(waits, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1000, 2000, 4000, 8000])
})

test('many addresses against one claimed account lock the account (one event), which never refuses a request', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const clock = { now: T0 }
  const { bf, events } = tracker(store, clock)
  for (let i = 0; i < 30; i++) await attempt(bf, store, clock.now, `198.51.100.${i}`, jwt({ client_id: 'victim-app' }))
  assert.deepEqual(
    events.map((e) => [e.target, e.account]),
    [['account', `${ISS} victim-app`]],
  )
  // The account is whatever a failing token wrote: a request naming it is never refused for that
  // (its token may be valid); authn decides. Only the address is guarded.
  assert.equal(bf.guards(asAttempt('203.0.113.77', jwt({ client_id: 'victim-app' })))!.checks.length, 1)
  assert.equal(await attempt(bf, store, clock.now, '203.0.113.77', jwt({ client_id: 'victim-app' })), '401')
  // The same client of another issuer is another account.
  for (let i = 0; i < 30; i++) await bf.onDenied({ clientIp: `192.0.2.${i}`, req: { headers: { authorization: jwt({ iss: 'https://other.example', client_id: 'victim-app' }) } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.deepEqual(
    events.map((e) => e.account),
    [`${ISS} victim-app`, 'https://other.example victim-app'],
  )
})

test('a success never resets an address that attacks many accounts; it clears only its own account', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const clock = { now: T0 }
  const { bf } = tracker(store, clock)
  for (let i = 0; i < 12; i++) await attempt(bf, store, clock.now, '198.51.100.9', jwt({ client_id: `target-${i}` }))
  // The attacker authenticates once with its own valid token …
  bf.recordSuccess({ issuer: ISS, clientId: 'attacker-own', subject: undefined })
  // … and is still throttled.
  assert.equal((await store.check(bf.guards(asAttempt('198.51.100.9', undefined))!.checks, clock.now)).allowed, false)

  // A legitimate client that fat-fingered a few times from its own address: its account count is cleared.
  const accountGuard = (account: string) => [{ kind: 'guard' as const, key: `f:acct:${keyValue(account)}`, params: bf.params, countBlocked: false }]
  for (let i = 0; i < 11; i++) await bf.onDenied({ clientIp: `203.0.113.${i}`, req: { headers: { authorization: jwt({ client_id: 'app-7' }) } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.equal((await store.check(accountGuard(`${ISS} app-7`), clock.now)).allowed, false, 'the account score is past the threshold')
  bf.recordSuccess({ issuer: 'https://other.example', clientId: 'app-7', subject: undefined })
  assert.equal((await store.check(accountGuard(`${ISS} app-7`), clock.now)).allowed, false, 'the same client id of another issuer clears nothing')
  bf.recordSuccess({ issuer: ISS, clientId: 'app-7', subject: undefined })
  assert.equal((await store.check(accountGuard(`${ISS} app-7`), clock.now)).allowed, true)
})

test('a token without iss, or with two spaces after Bearer, is counted as the token says', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const clock = { now: T0 }
  const { bf, events } = tracker(store, clock)
  const noIss = `Bearer e30.${Buffer.from(JSON.stringify({ client_id: 'anon' })).toString('base64url')}.c2ln`
  for (let i = 0; i < 30; i++) await bf.onDenied({ clientIp: `198.51.100.${i}`, req: { headers: { authorization: noIss } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.equal(events.length, 0, 'no issuer, no account: only the (distinct) addresses were counted')
  const spaced = jwt({ client_id: 'spaced' }).replace('Bearer ', 'Bearer   ')
  for (let i = 0; i < 30; i++) await bf.onDenied({ clientIp: `203.0.113.${i}`, req: { headers: { authorization: spaced } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.deepEqual(events.map((e) => e.account), [`${ISS} spaced`])
})

test('with perAccount off only addresses are counted', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const { bf } = tracker(store, { now: T0 }, { ...CONFIG, perAccount: false })
  await bf.onDenied({ clientIp: '192.0.2.1', req: { headers: { authorization: jwt({ client_id: 'x' }) } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.equal(bf.guards(asAttempt('198.51.100.9', jwt({ client_id: 'x' })))!.checks.length, 1)
})

test('disabled brute-force protection records nothing', async () => {
  const store = createMemoryStore({ maxKeys: 10_000 })
  const { bf } = tracker(store, { now: T0 }, { ...CONFIG, enabled: false })
  for (let i = 0; i < 50; i++) await bf.onDenied({ clientIp: '198.51.100.9', req: { headers: {} } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.equal(store.stats().size, 0)
})

test('with Redis, a lockout decided on one gateway instance holds on another and is announced once', async (t) => {
  const url = await requireRedis(t)
  if (!url) return
  const keyPrefix = uniquePrefix('brute-force')
  const stores = [0, 1].map(() => createRedisStore({ url, keyPrefix, clock: 'gateway', commandTimeoutMs: 2000, connectTimeoutMs: 2000 }))
  try {
    await Promise.all(stores.map((s) => s.ready()))
    const clock = { now: T0 }
    const a = tracker(stores[0], clock)
    const b = tracker(stores[1], clock)
    // The attacker alternates between two gateway instances behind a load balancer.
    const answers = []
    for (let i = 0; i < 50; i++) {
      const side = i % 2 === 0 ? a : b
      answers.push(await attempt(side.bf, stores[i % 2], clock.now, '198.51.100.9', 'Bearer junk'))
    }
    assert.equal(answers.filter((x) => x === '401').length, 11)
    assert.equal(a.events.length + b.events.length, 1)
    assert.equal(await attempt(b.bf, stores[1], clock.now + 600_000, '198.51.100.9'), '429')
    assert.equal(await attempt(a.bf, stores[0], clock.now, '203.0.113.5'), '401') // elsewhere: unaffected
  } finally {
    await Promise.all(stores.map((s) => s.close()))
    await deleteByPrefix(url, keyPrefix)
  }
})

test('with the memory store, the address guard runs only while a recorded failure can still block', async () => {
  const clock = { now: T0 }
  const store = createMemoryStore({ maxKeys: 1000 })
  const { bf } = tracker(store, clock)
  const token = jwt({ client_id: 'victim' })
  assert.equal(bf.guards(asAttempt('192.0.2.1', token)), undefined, 'nothing failed yet: no guard, no store call')
  // A failure: addresses are checked from now on (all of them), and only addresses.
  await bf.onDenied({ clientIp: '192.0.2.1', req: { headers: { authorization: token } } }, 'ERR_AUTHN_INVALID_TOKEN')
  assert.deepEqual(
    bf.guards(asAttempt('198.51.100.9', token))?.checks.map((c) => c.key),
    [`f:ip:${addressKey('198.51.100.9', 64)}`],
  )
  // Long after every score, throttle and lockout could have expired, the guard is skipped again.
  clock.now += 24 * 3600 * 1000
  assert.equal(bf.guards(asAttempt('198.51.100.9', token)), undefined)
})

test('skipping the guard while nothing can be blocked changes no answer: the same attacks get the same 401s and 429s as a tracker that always guards', async () => {
  const clock = { now: T0 }
  const skipping = createMemoryStore({ maxKeys: 10_000 })
  // The same store without failuresLiveUntil: the tracker then treats it as shared and always guards.
  const { failuresLiveUntil: _, ...shared } = createMemoryStore({ maxKeys: 10_000 })
  const always: LimitStore = { ...shared, kind: 'shared-for-test' }
  const a = tracker(skipping, clock).bf
  const b = tracker(always, clock).bf
  const answers: Array<[string, string]> = []
  const both = async (ip: string, authorization?: string) => {
    answers.push([await attempt(a, skipping, clock.now, ip, authorization), await attempt(b, always, clock.now, ip, authorization)])
  }
  // Bursts from one address and against one account, knocking during locks, and pauses long enough
  // for every score to drain (so the skipping tracker stops guarding in between).
  for (const pauseMs of [0, 60_000, 3_600_000, 24 * 3_600_000]) {
    clock.now += pauseMs
    for (let i = 0; i < 35; i++) await both('198.51.100.9', 'Bearer not-a-jwt')
    for (let i = 0; i < 35; i++) await both(`203.0.113.${i}`, jwt({ client_id: 'victim' }))
    for (let minute = 0; minute < 40; minute++) {
      clock.now += 60_000
      await both('198.51.100.9', 'Bearer not-a-jwt')
      await both('192.0.2.44', jwt({ client_id: 'victim' }))
    }
  }
  assert.deepEqual(answers.map(([x]) => x), answers.map(([, y]) => y))
  assert.ok(answers.some(([x]) => x === '429') && answers.some(([x]) => x === '401'), 'the scenario throttles and lets through')
})

test('after a reload to a shorter lockout, a lock the earlier config set on a kept store still holds until it ends', async () => {
  const clock = { now: T0 }
  const store = createMemoryStore({ maxKeys: 1000 })
  const before = tracker(store, clock, { ...CONFIG, lockout: { after: 30, ttlSec: 3600 } }).bf
  for (let i = 0; i < 30; i++) await attempt(before, store, clock.now, '198.51.100.9', 'Bearer not-a-jwt')
  const config = { ...CONFIG, lockout: { after: 30, ttlSec: 60 } }
  const after = createBruteForceTracker(config, store, { now: () => clock.now, addressKey: (ip) => addressKey(ip, 64) })
  // Past anything the new config could have locked for, but inside the old lock.
  clock.now += 40 * 60_000
  assert.equal(await attempt(after, store, clock.now, '198.51.100.9', 'Bearer not-a-jwt'), '429')
})
