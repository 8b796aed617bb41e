import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createEventSampler } from './sampler.js'

const T0 = Date.UTC(2031, 0, 15, 12)

test('emits at most perKeyPerSec events per key and second, and reports what it suppressed', () => {
  const s = createEventSampler({ perKeyPerSec: 2 })
  const first = Array.from({ length: 10 }, () => s.sample('203.0.113.7', T0 + 100))
  assert.deepEqual(first, [0, 0, -1, -1, -1, -1, -1, -1, -1, -1])
  // The next second's first event carries the 8 suppressed before it.
  assert.equal(s.sample('203.0.113.7', T0 + 1000), 8)
  assert.equal(s.sample('203.0.113.7', T0 + 1001), 0)
  assert.deepEqual(s.stats(), { emitted: 4, suppressed: 8 })
})

test("one key's flood does not silence another key", () => {
  const s = createEventSampler({ perKeyPerSec: 1 })
  for (let i = 0; i < 100; i++) s.sample('attacker', T0)
  assert.equal(s.sample('someone-else', T0), 0)
})

test('a distributed flood is capped overall per second', () => {
  const s = createEventSampler({ perKeyPerSec: 1, maxPerSec: 10 })
  const emitted = Array.from({ length: 1000 }, (_, i) => s.sample(`ip-${i}`, T0)).filter((v) => v >= 0).length
  assert.equal(emitted, 10)
})

test('remembers a bounded number of keys', () => {
  const s = createEventSampler({ perKeyPerSec: 1, maxPerSec: 1e9, maxKeys: 100 })
  for (let i = 0; i < 1000; i++) s.sample(`ip-${i}`, T0)
  // ip-0 was forgotten: it is a fresh key again, not a suppressed one.
  assert.equal(s.sample('ip-0', T0), 0)
  assert.equal(s.sample('ip-999', T0), -1)
})
