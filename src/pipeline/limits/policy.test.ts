import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { LimitsConfig, PolicyConfig } from './config.js'
import { compilePolicy, planRoutes } from './policy.js'

const base = (policies: PolicyConfig[], defaultPolicies: string[] = []) => ({ policies, defaultPolicies }) as unknown as LimitsConfig

test('a policy keyed by identity or with tiers runs after authn; by address or route, before', () => {
  assert.equal(compilePolicy({ id: 'a', key: ['ip'], rate: { limit: 1, periodSec: 1 } }).phase, 'beforeAuthn')
  assert.equal(compilePolicy({ id: 'a', key: ['ip', 'route'], rate: { limit: 1, periodSec: 1 } }).phase, 'beforeAuthn')
  assert.equal(compilePolicy({ id: 'a', key: ['ip', 'client'], rate: { limit: 1, periodSec: 1 } }).phase, 'afterAuthn')
  assert.equal(compilePolicy({ id: 'a', key: ['apiKey'], rate: { limit: 1, periodSec: 1 } }).phase, 'afterAuthn')
  assert.equal(compilePolicy({ id: 'a', key: ['ip'], rate: { limit: 1, periodSec: 1 }, tiers: { claim: 'plan', values: {} } }).phase, 'afterAuthn')
})

test('the burst defaults to the limit and every check gets its own key prefix and header name', () => {
  const p = compilePolicy({
    id: 'p',
    key: ['client'],
    rate: { limit: 10, periodSec: 2 },
    quotas: [{ limit: 5, period: 'month' }],
    concurrency: { limit: 3, leaseSec: 30 },
  })
  assert.deepEqual(p.base.templates, [
    { kind: 'rate', prefix: 'r:p:', name: 'p', intervalUs: 200_000, burst: 10 },
    { kind: 'quota', prefix: 'q:p:month:', name: 'p.month', limit: 5, period: 'month' },
    { kind: 'concurrency', prefix: 'c:p:', name: 'p.concurrency', limit: 3, leaseMs: 30_000 },
  ])
  assert.equal(p.base.policyField, '"p";q=10;w=2, "p.month";q=5, "p.concurrency";q=3;qu="concurrent-requests"')
})

test('a tier replaces only the fields it sets and counts in its own keys', () => {
  const p = compilePolicy({
    id: 'p',
    key: ['client'],
    rate: { limit: 10, periodSec: 1 },
    quotas: [{ limit: 100, period: 'day' }],
    tiers: { claim: 'plan', values: { gold: { rate: { limit: 50, periodSec: 1 } } } },
  })
  const gold = p.tiers!.get('gold')!
  assert.deepEqual(
    gold.templates.map((t) => [t.kind, t.prefix]),
    [
      ['rate', 'r:p~gold:'],
      ['quota', 'q:p~gold:day:'],
    ],
  )
  assert.equal(gold.policyField, '"p";q=50;w=1, "p.day";q=100;w=86400')
})

test('routes get the default policies first, without duplicates, and unlisted routes get only them', () => {
  const config = base(
    [
      { id: 'ip', key: ['ip'], rate: { limit: 1, periodSec: 1 } },
      { id: 'route', key: ['route'], rate: { limit: 1, periodSec: 1 } },
      { id: 'client', key: ['client'], rate: { limit: 1, periodSec: 1 } },
    ],
    ['ip'],
  )
  const before = planRoutes(config, new Map([['r', ['route', 'ip', 'client']]]), 'beforeAuthn')
  assert.deepEqual(
    before.planFor('r').policies.map((p) => p.id),
    ['ip', 'route'],
  )
  assert.deepEqual(
    before.planFor('other').policies.map((p) => p.id),
    ['ip'],
  )
  const after = planRoutes(config, new Map([['r', ['client']]]), 'afterAuthn')
  assert.deepEqual(
    after.planFor('r').policies.map((p) => p.id),
    ['client'],
  )
  assert.equal(after.planFor('other').policies.length, 0)
  assert.throws(() => planRoutes(config, new Map([['r', ['nope']]]), 'afterAuthn'), /unknown limit policy "nope"/)
})
