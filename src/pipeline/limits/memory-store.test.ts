import assert from 'node:assert/strict'
import { test } from 'node:test'
import { intervalUs } from './gcra.js'
import { createMemoryStore } from './memory-store.js'
import { runStoreContract } from './store.contract.js'
import type { RateCheck } from './store.js'

runStoreContract('memory store', async () => ({ store: createMemoryStore({ maxKeys: 100_000 }), cleanup: async () => {} }))

const T0 = Date.UTC(2031, 0, 15, 12)
const rate = (key: string): RateCheck => ({ kind: 'rate', key, intervalUs: intervalUs(10, 10), burst: 10 })

test('memory store answers synchronously, so the stage never awaits it', () => {
  const store = createMemoryStore({ maxKeys: 1000 })
  const d = store.check([rate('a')], T0)
  assert.equal(typeof (d as unknown as { then?: unknown }).then, 'undefined')
  assert.equal(d.allowed, true)
})

test('memory store never holds more than maxKeys keys and evicts the least recently written', () => {
  const store = createMemoryStore({ maxKeys: 1000 })
  for (let i = 0; i < 5000; i++) store.check([rate(`k${i}`)], T0)
  assert.equal(store.stats().size, 1000)
  assert.equal(store.stats().evicted, 4000)
  // The most recent key kept its state; the oldest one starts afresh.
  assert.equal(store.check([rate('k4999')], T0).results[0].remaining, 8)
  assert.equal(store.check([rate('k0')], T0).results[0].remaining, 9)
})

test('memory store drops idle keys as it goes, without a timer', () => {
  const store = createMemoryStore({ maxKeys: 100_000 })
  for (let i = 0; i < 1000; i++) store.check([rate(`idle${i}`)], T0) // each idle again after 1 s
  assert.equal(store.stats().size, 1000)
  // Later traffic on other keys sweeps the idle ones (a few entries per write).
  for (let i = 0; i < 600; i++) store.check([rate(`busy${i % 10}`)], T0 + 5_000 + i * 1000)
  assert.ok(store.stats().size <= 10, `size ${store.stats().size}`)
  assert.ok(store.stats().expired >= 1000)
  assert.equal(store.stats().evicted, 0)
})

test('memory store keeps a live lockout over idle keys when it sweeps', () => {
  const store = createMemoryStore({ maxKeys: 100_000 })
  const p = { intervalUs: 20_000_000, threshold: 3, lockAfter: 6, lockMs: 600_000, baseDelayMs: 1000, maxDelayMs: 60_000 }
  for (let i = 0; i < 6; i++) store.recordFailures(['f:attacker'], p, T0)
  for (let i = 0; i < 2000; i++) store.check([rate(`x${i}`)], T0 + 60_000 + i)
  const g = store.check([{ kind: 'guard', key: 'f:attacker', params: p, countBlocked: false }], T0 + 300_000)
  assert.equal(g.allowed, false)
  assert.equal(g.results[0].locked, true)
})
