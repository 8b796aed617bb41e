import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from '@sinclair/typebox'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { LimitsSchema, RouteLimitsField, limitsSemanticIssues, type LimitsConfig } from './config.js'

// The same validator settings as config/load.ts, on a root that holds the fragment as the lead will merge it.
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false })
const Root = Type.Object(
  { limits: LimitsSchema, routes: Type.Array(Type.Object({ id: Type.String(), limits: RouteLimitsField }, { additionalProperties: false })) },
  { additionalProperties: false },
)
const validate = ajv.compile(Root)

function load(doc: Record<string, unknown>): { limits: LimitsConfig; routes: { id: string; limits?: string[] }[] } {
  const copy = structuredClone({ routes: [], ...doc })
  if (!validate(copy)) throw new Error(JSON.stringify(validate.errors))
  return copy as never
}

test('an absent limits section is complete after defaults: memory store, headers on, brute force on', () => {
  const { limits } = load({})
  assert.deepEqual(limits.store, { type: 'memory', maxKeys: 1_000_000 })
  assert.deepEqual(limits.headers, { rateLimit: true })
  assert.deepEqual(limits.policies, [])
  assert.deepEqual(limits.bruteForce, {
    enabled: true,
    threshold: 10,
    windowSec: 300,
    throttle: { baseDelayMs: 1000, maxDelayMs: 60_000 },
    lockout: { after: 30, ttlSec: 900 },
    perAccount: true,
  })
  assert.equal(limits.ipv6PrefixLength, 64)
  assert.deepEqual(limitsSemanticIssues(limits, []), [])
})

test('a Redis store gets its defaults, failing over to memory unless told otherwise', () => {
  const { limits } = load({ limits: { store: { type: 'redis', redis: { url: 'redis://127.0.0.1:6379' } } } })
  assert.deepEqual(limits.store.redis, {
    url: 'redis://127.0.0.1:6379',
    keyPrefix: 'portcullis:limits:',
    commandTimeoutMs: 250,
    connectTimeoutMs: 2000,
    clock: 'redis',
    onStoreError: 'fallback-memory',
    probeIntervalMs: 1000,
    pipelining: false,
  })
})

test('a full policy with rate, quotas, concurrency and tiers validates', () => {
  const { limits, routes } = load({
    limits: {
      policies: [
        {
          id: 'per-client',
          key: ['client'],
          rate: { limit: 100, periodSec: 1, burst: 20 },
          quotas: [{ limit: 10000, period: 'day' }, { limit: 200000, period: 'month' }],
          concurrency: { limit: 10 },
          tiers: { claim: 'plan', values: { gold: { rate: { limit: 1000, periodSec: 1 } } } },
        },
        { id: 'per-ip', key: ['ip', 'route'], rate: { limit: 20, periodSec: 1 } },
      ],
      defaultPolicies: ['per-ip'],
    },
    routes: [{ id: 'orders', limits: ['per-client'] }],
  })
  assert.equal(limits.policies[0].concurrency!.leaseSec, 300)
  assert.deepEqual(limitsSemanticIssues(limits, routes), [])
})

test('unknown fields, unknown key parts and bad values are schema errors', () => {
  const bad = [
    { limits: { polices: [] } },
    { limits: { policies: [{ id: 'a', key: ['email'], rate: { limit: 1, periodSec: 1 } }] } },
    { limits: { policies: [{ id: 'a', key: [], rate: { limit: 1, periodSec: 1 } }] } },
    { limits: { policies: [{ id: 'a', key: ['ip', 'ip'], rate: { limit: 1, periodSec: 1 } }] } },
    { limits: { policies: [{ id: 'a', key: ['ip'], rate: { limit: 0, periodSec: 1 } }] } },
    { limits: { policies: [{ id: 'a', key: ['ip'], rate: { limit: 1, periodSec: 1, bucket: 3 } }] } },
    { limits: { policies: [{ id: 'a', key: ['ip'], quotas: [{ limit: 1, period: 'week' }] }] } },
    { limits: { store: { type: 'redis', redis: { url: 'redis://x', onStoreError: 'retry' } } } },
    { limits: { bruteForce: { lockout: { after: 1 } } } },
    // A tier name outside the id pattern once switched off every check of the tier.
    { limits: { policies: [{ id: 'a', key: ['ip'], tiers: { claim: 'plan', values: { 'free tier': { rate: { limit: 1, periodSec: 1 } } } } }] } },
  ]
  for (const doc of bad) assert.throws(() => load(doc), /instancePath/, JSON.stringify(doc))
})

test('semantic checks catch references to unknown policies, duplicates and contradictory settings', () => {
  const { limits, routes } = load({
    limits: {
      policies: [
        { id: 'a', key: ['ip'], rate: { limit: 1, periodSec: 1 } },
        { id: 'a', key: ['ip'], quotas: [{ limit: 1, period: 'day' }, { limit: 2, period: 'day' }] },
        { id: 'empty', key: ['ip'] },
        { id: 'fast', key: ['ip'], rate: { limit: 2_000_000, periodSec: 1 } },
      ],
      defaultPolicies: ['nope'],
      bruteForce: { threshold: 10, lockout: { after: 10 }, throttle: { baseDelayMs: 5000, maxDelayMs: 1000 } },
      store: { type: 'redis' },
    },
    routes: [{ id: 'r', limits: ['a', 'missing'] }],
  })
  const paths = limitsSemanticIssues(limits, routes).map((i) => i.path)
  assert.deepEqual(paths.sort(), [
    '/limits/bruteForce/lockout/after',
    '/limits/bruteForce/throttle/maxDelayMs',
    '/limits/defaultPolicies/0',
    '/limits/policies/1/id',
    '/limits/policies/1/quotas/1/period',
    '/limits/policies/2',
    '/limits/policies/3/rate/limit',
    '/limits/store',
    '/routes/0/limits/1',
  ])
})

test('a policy id that is how the RateLimit fields name another policy\'s quota or concurrency cap is refused', () => {
  const { limits } = load({
    limits: {
      policies: [
        { id: 'api', key: ['client'], rate: { limit: 10, periodSec: 1 }, quotas: [{ limit: 1000, period: 'day' }] },
        { id: 'api.day', key: ['ip'], rate: { limit: 5, periodSec: 1 } },
        { id: 'api.concurrency', key: ['ip'], rate: { limit: 5, periodSec: 1 } },
        // Fine: not a name the fields give any limit of "api", or no policy "v1".
        { id: 'api.week', key: ['ip'], rate: { limit: 5, periodSec: 1 } },
        { id: 'v1.day', key: ['ip'], rate: { limit: 5, periodSec: 1 } },
      ],
    },
  })
  assert.deepEqual(
    limitsSemanticIssues(limits, []).map((i) => [i.path, i.message]),
    [
      ['/limits/policies/1/id', '"api.day" is how the RateLimit fields name the day quota of policy "api": choose another id'],
      ['/limits/policies/2/id', '"api.concurrency" is how the RateLimit fields name the concurrency cap of policy "api": choose another id'],
    ],
  )
})

test('semantic messages never echo the Redis URL (it may hold a password)', () => {
  const { limits } = load({ limits: { store: { type: 'redis', redis: { url: 'http://user:s3cret@host' } } } })
  const issues = limitsSemanticIssues(limits, [])
  assert.equal(issues.length, 1)
  assert.ok(!issues[0].message.includes('s3cret'))
})

test('a tier or policy number that is not a whole number of at least 1 is refused by the semantic checks too', () => {
  const { limits } = load({
    limits: { policies: [{ id: 'a', key: ['ip'], tiers: { claim: 'plan', values: { gold: { rate: { limit: 1, periodSec: 1 } } } } }] },
  })
  // As if the schema had let them through (it refuses each of them itself).
  const policy = limits.policies[0] as unknown as Record<string, unknown>
  policy.rate = { periodSec: 'x' }
  policy.quotas = [{ limit: Infinity, period: 'day' }]
  policy.concurrency = { limit: 0.5, leaseSec: 300 }
  ;(limits.policies[0].tiers!.values as Record<string, unknown>)['free/tier'] = { rate: { limit: NaN, periodSec: 1, burst: -1 } }
  assert.deepEqual(
    limitsSemanticIssues(limits, []).map((i) => [i.path, i.message]),
    [
      ['/limits/policies/0/rate/limit', 'must be a whole number of at least 1'],
      ['/limits/policies/0/rate/periodSec', 'must be a whole number of at least 1'],
      ['/limits/policies/0/quotas/0/limit', 'must be a whole number of at least 1'],
      ['/limits/policies/0/concurrency/limit', 'must be a whole number of at least 1'],
      ['/limits/policies/0/tiers/values/free~1tier/rate/limit', 'must be a whole number of at least 1'],
      ['/limits/policies/0/tiers/values/free~1tier/rate/burst', 'must be a whole number of at least 1'],
    ],
  )
})
