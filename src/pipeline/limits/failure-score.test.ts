import assert from 'node:assert/strict'
import { test } from 'node:test'
import { blockStatus, failureParams, failureTtlMs, penalize, scoreOf, type FailureState } from './failure-score.js'

const P = failureParams({ threshold: 5, windowSec: 300, throttle: { baseDelayMs: 1000, maxDelayMs: 8000 }, lockout: { after: 12, ttlSec: 900 } })
const NOW_MS = Date.UTC(2031, 0, 15, 12)

function fail(times: number, startMs = NOW_MS, stepMs = 0, from?: FailureState) {
  let state = from
  const out = []
  for (let i = 0; i < times; i++) {
    const ms = startMs + i * stepMs
    const r = penalize(state, ms * 1000, ms, P)
    state = r.state
    out.push({ score: r.score, ...blockStatus(r.state, ms), newlyLocked: r.newlyLocked })
  }
  return { state: state!, out }
}

test('failures up to the threshold are tolerated, then each one doubles the delay up to the cap', () => {
  const { out } = fail(11)
  assert.deepEqual(
    out.map((o) => o.retryAfterMs),
    [0, 0, 0, 0, 0, 1000, 2000, 4000, 8000, 8000, 8000],
  )
  assert.ok(out.every((o) => !o.locked))
})

test('the lockAfter-th failure locks the key once, and further failures keep it locked', () => {
  const { out } = fail(15)
  assert.deepEqual(
    out.slice(10).map((o) => [o.score, o.locked, o.newlyLocked, o.retryAfterMs]),
    [
      [11, false, false, 8000],
      [12, true, true, 900_000],
      [12, true, false, 900_000],
      [12, true, false, 900_000],
      [12, true, false, 900_000],
    ],
  )
})

test('the score drains by threshold per window, so a slow trickle is never throttled', () => {
  // 5 failures per 300 s is the tolerated rate: one every 60 s forever stays at score 1.
  const { out } = fail(50, NOW_MS, 60_000)
  assert.ok(out.every((o) => o.score === 1 && !o.blocked))
  // One every 30 s climbs and is throttled.
  const fast = fail(20, NOW_MS, 30_000)
  assert.ok(fast.out.some((o) => o.blocked))
})

test('a lockout ends after its TTL once the attempts stop, and the score keeps draining', () => {
  const { state } = fail(12)
  assert.equal(blockStatus(state, NOW_MS + 899_999).blocked, true)
  assert.equal(blockStatus(state, NOW_MS + 900_000).blocked, false)
  // Score capped at 12 drains 5 per 300 s: after 900 s it is 12 − 15 → 0.
  assert.equal(scoreOf(state, (NOW_MS + 900_000) * 1000, P), 0)
})

test('an attacker who keeps trying during a lockout stays locked, but not forever after stopping', () => {
  const { state } = fail(500, NOW_MS, 1000) // 500 attempts, one per second
  const lastMs = NOW_MS + 499_000
  assert.equal(blockStatus(state, lastMs + 899_999).blocked, true)
  assert.equal(blockStatus(state, lastMs + 900_000).blocked, false)
  assert.ok(scoreOf(state, lastMs * 1000, P) <= P.lockAfter)
})

test('state is kept exactly as long as it matters', () => {
  const { state } = fail(6)
  // score 6 drains in 6 × 60 s; the 1 s throttle is shorter.
  assert.equal(failureTtlMs(state, NOW_MS * 1000, NOW_MS), 360_000)
})
