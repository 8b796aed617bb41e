import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nominalWindowSec, quota, windowOf } from './quota.js'

const at = (iso: string) => Date.parse(iso)

test('windows are UTC calendar hours, days and months', () => {
  const now = at('2031-07-15T13:45:12.345Z')
  assert.deepEqual(windowOf('hour', now), { startMs: at('2031-07-15T13:00:00Z'), endMs: at('2031-07-15T14:00:00Z') })
  assert.deepEqual(windowOf('day', now), { startMs: at('2031-07-15T00:00:00Z'), endMs: at('2031-07-16T00:00:00Z') })
  assert.deepEqual(windowOf('month', now), { startMs: at('2031-07-01T00:00:00Z'), endMs: at('2031-08-01T00:00:00Z') })
})

test('month windows follow the calendar: leap Februaries, year ends, century rules', () => {
  const len = (iso: string) => {
    const w = windowOf('month', at(iso))
    return (w.endMs - w.startMs) / 86_400_000
  }
  assert.equal(len('2028-02-10T00:00:00Z'), 29)
  assert.equal(len('2031-02-10T00:00:00Z'), 28)
  assert.equal(len('2100-02-10T00:00:00Z'), 28)
  assert.equal(len('2000-02-10T00:00:00Z'), 29)
  assert.deepEqual(windowOf('month', at('2030-12-31T23:59:59.999Z')), { startMs: at('2030-12-01T00:00:00Z'), endMs: at('2031-01-01T00:00:00Z') })
  assert.equal(windowOf('month', at('2031-01-01T00:00:00.000Z')).startMs, at('2031-01-01T00:00:00Z'))
})

test('a quota admits limit requests per window and says how long until the next window', () => {
  let stored: { windowStartMs: number; count: number } | undefined
  const now = at('2031-01-31T23:00:00Z')
  const results = []
  for (let i = 0; i < 4; i++) {
    const r = quota(stored, now, 3, 'day')
    if (r.allowed) stored = { windowStartMs: r.window.startMs, count: r.count }
    results.push([r.allowed, r.remaining, r.retryAfterMs])
  }
  assert.deepEqual(results, [
    [true, 2, 0],
    [true, 1, 0],
    [true, 0, 0],
    [false, 0, 3_600_000],
  ])
})

test('a counter from an earlier window counts as zero (quotas across days and months)', () => {
  const day = quota({ windowStartMs: at('2031-01-31T00:00:00Z'), count: 3 }, at('2031-02-01T00:00:00Z'), 3, 'day')
  assert.deepEqual([day.allowed, day.count, day.remaining], [true, 1, 2])
  const month = quota({ windowStartMs: at('2031-01-01T00:00:00Z'), count: 1000 }, at('2031-02-01T00:00:00Z'), 1000, 'month')
  assert.deepEqual([month.allowed, month.count], [true, 1])
  const same = quota({ windowStartMs: at('2031-02-01T00:00:00Z'), count: 1000 }, at('2031-02-28T23:59:59.999Z'), 1000, 'month')
  assert.deepEqual([same.allowed, same.retryAfterMs], [false, 1])
})

test('nominal window lengths are given for hours and days, not for months', () => {
  assert.deepEqual([nominalWindowSec('hour'), nominalWindowSec('day'), nominalWindowSec('month')], [3600, 86_400, undefined])
})
