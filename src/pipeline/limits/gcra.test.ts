import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gcra, intervalUs, usToMsCeil, type GcraParams } from './gcra.js'

const NOW = Date.UTC(2031, 0, 15, 12) * 1000 // µs

/** Runs requests at the given µs times against one key; returns which were admitted. */
function run(p: GcraParams, times: number[]): boolean[] {
  let tat: number | undefined
  return times.map((t) => {
    const r = gcra(tat, t, p)
    if (r.allowed) tat = r.tatUs
    return r.allowed
  })
}

test('an idle key admits exactly burst simultaneous requests, for any rate', () => {
  for (const [limit, periodSec, burst] of [
    [3, 1, 3],
    [7, 1, 7],
    [10, 3, 10],
    [100, 60, 20],
    [1000, 1, 1000],
    [1, 86_400, 1],
  ]) {
    const admitted = run({ intervalUs: intervalUs(limit, periodSec), burst }, Array(burst * 3).fill(NOW)).filter(Boolean).length
    assert.equal(admitted, burst, `${limit}/${periodSec}s burst ${burst}`)
  }
})

test('a fractional interval is exact: three per second admits the fourth at exactly one third of a second', () => {
  const p = { intervalUs: intervalUs(3, 1), burst: 3 }
  assert.equal(p.intervalUs, 333_333)
  assert.deepEqual(run(p, [NOW, NOW, NOW, NOW, NOW + 333_332, NOW + 333_333]), [true, true, true, false, false, true])
})

test('refills one request per interval after the bucket is empty', () => {
  const p = { intervalUs: 1_000_000, burst: 2 }
  const times = [0, 0, 0, 999_999, 1_000_000, 1_000_000, 2_000_000, 5_000_000, 5_000_000, 5_000_000].map((d) => NOW + d)
  assert.deepEqual(run(p, times), [true, true, false, false, true, false, true, true, true, false])
})

test('no interval of any length admits more than burst plus one per interval', () => {
  // Deterministic pseudo-random arrivals; checks the bound on every window between two arrivals.
  let seed = 42
  const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
  const p = { intervalUs: 50_000, burst: 5 }
  const times: number[] = []
  for (let t = NOW, i = 0; i < 2000; i++) times.push((t += Math.floor(rand() * 40_000)))
  const ok = run(p, times)
  const admittedAt = times.filter((_, i) => ok[i])
  for (let i = 0; i < admittedAt.length; i++) {
    for (let j = i; j < admittedAt.length; j++) {
      const w = admittedAt[j] - admittedAt[i]
      if (w > 2_000_000) break
      assert.ok(j - i + 1 <= p.burst + Math.floor(w / p.intervalUs), `window ${w} µs admitted ${j - i + 1}`)
    }
  }
  // And it is not vacuous: the sustained rate is reached.
  const spanUs = admittedAt.at(-1)! - admittedAt[0]
  assert.ok(admittedAt.length >= Math.floor(spanUs / p.intervalUs))
})

test('a denied request changes nothing and says when it would conform', () => {
  const p = { intervalUs: 1_000_000, burst: 1 }
  const first = gcra(undefined, NOW, p)
  const denied = gcra(first.tatUs, NOW + 400_000, p)
  assert.deepEqual(
    { allowed: denied.allowed, tatUs: denied.tatUs, retryAfterUs: denied.retryAfterUs, remaining: denied.remaining },
    { allowed: false, tatUs: first.tatUs, retryAfterUs: 600_000, remaining: 0 },
  )
})

test('remaining and reset describe the bucket after the request', () => {
  const p = { intervalUs: 100_000, burst: 10 }
  let r = gcra(undefined, NOW, p)
  assert.deepEqual([r.remaining, r.resetUs], [9, 100_000])
  for (let i = 0; i < 8; i++) r = gcra(r.tatUs, NOW, p)
  assert.deepEqual([r.remaining, r.resetUs], [1, 900_000])
  r = gcra(r.tatUs, NOW + 250_000, p) // 2.5 intervals later: 2 refilled, this one takes one
  assert.deepEqual([r.remaining, r.resetUs], [2, 750_000])
})

test('a past TAT counts as an idle key', () => {
  const p = { intervalUs: 1_000_000, burst: 3 }
  assert.equal(gcra(NOW - 10_000_000, NOW, p).remaining, 2)
})

test('microseconds round up to milliseconds so a client never retries early', () => {
  assert.deepEqual([usToMsCeil(1), usToMsCeil(1000), usToMsCeil(1001), usToMsCeil(0)], [1, 1, 2, 0])
  assert.equal(intervalUs(3, 1), 333_333)
  assert.equal(intervalUs(2_000_000, 1), 1) // never 0
})
