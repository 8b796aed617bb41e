import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { failureParams } from './failure-score.js'
import { intervalUs } from './gcra.js'
import type { ConcurrencyCheck, GuardCheck, LimitStore, PolicyCheck, QuotaCheck, RateCheck } from './store.js'

/**
 * One behavioural suite for every LimitStore: memory-store.test.ts and redis-store.test.ts both
 * run it, so "two stores, one behaviour" is checked, not hoped. Time is injected through the
 * `nowMs` argument (the Redis store runs with clock "gateway" here).
 */
export interface ContractSubject {
  readonly store: LimitStore
  cleanup(): Promise<void>
}

/** Creates a fresh store for one test, or undefined when the test was skipped (no Redis). */
export type ContractSetup = (t: TestContext) => Promise<ContractSubject | undefined>

const T0 = Date.UTC(2031, 0, 15, 12, 0, 0)
const utc = (iso: string) => Date.parse(iso)
const uid = () => randomBytes(6).toString('hex')

const rate = (key: string, limit: number, periodSec: number, burst = limit): RateCheck => ({
  kind: 'rate',
  key: `r:${key}`,
  intervalUs: intervalUs(limit, periodSec),
  burst,
})
const quota = (key: string, limit: number, period: QuotaCheck['period']): QuotaCheck => ({ kind: 'quota', key: `q:${key}`, limit, period })
const slot = (key: string, limit: number, leaseMs: number): ConcurrencyCheck => ({ kind: 'concurrency', key: `c:${key}`, limit, leaseMs, leaseId: uid() })
const BF = failureParams({ threshold: 3, windowSec: 60, throttle: { baseDelayMs: 1000, maxDelayMs: 60_000 }, lockout: { after: 6, ttlSec: 600 } })
const guard = (key: string, countBlocked = false): GuardCheck => ({ kind: 'guard', key: `f:${key}`, params: BF, countBlocked })

async function admitted(store: LimitStore, make: () => PolicyCheck[], n: number, nowMs: number): Promise<number> {
  const decisions = await Promise.all(Array.from({ length: n }, () => store.check(make(), nowMs)))
  return decisions.filter((d) => d.allowed).length
}

export function runStoreContract(name: string, setup: ContractSetup): void {
  const it = (title: string, body: (store: LimitStore) => Promise<void>) =>
    test(`${name}: ${title}`, async (t) => {
      const subject = await setup(t)
      if (!subject) return
      try {
        await body(subject.store)
      } finally {
        await subject.cleanup()
      }
    })

  it('a burst of N simultaneous requests against a bucket of L admits exactly L', async (store) => {
    const k = uid()
    assert.equal(await admitted(store, () => [rate(k, 10, 1)], 25, T0), 10)
    assert.equal(await admitted(store, () => [rate(`${k}b`, 100, 3600, 7)], 40, T0), 7)
  })

  it('refills one request per interval and never more than the burst', async (store) => {
    const k = uid()
    const c = () => [rate(k, 10, 10, 5)] // one per second, bucket of 5
    assert.equal(await admitted(store, c, 5, T0), 5)
    assert.equal((await store.check(c(), T0 + 999)).allowed, false)
    assert.equal((await store.check(c(), T0 + 1000)).allowed, true)
    assert.equal((await store.check(c(), T0 + 1000)).allowed, false)
    assert.equal(await admitted(store, c, 20, T0 + 3_600_000), 5)
  })

  it('admits no second burst right after a window boundary', async (store) => {
    const k = uid()
    const c = () => [rate(k, 100, 60)] // 100 per minute, bucket 100
    const lastMs = utc('2031-01-15T12:00:59.999Z')
    assert.equal(await admitted(store, c, 100, lastMs), 100)
    // A fixed-window counter would admit 100 more at 12:01:00.000; GCRA admits one per 600 ms.
    assert.equal(await admitted(store, c, 100, lastMs + 2), 0)
    assert.equal(await admitted(store, c, 100, lastMs + 600), 1)
  })

  it('over any interval admits at most burst plus one per interval', async (store) => {
    const k = uid()
    const c = () => [rate(k, 10, 1, 4)] // interval 100 ms, bucket 4
    let total = 0
    for (let t = 0; t <= 1000; t += 25) total += await admitted(store, c, 3, T0 + t)
    assert.equal(total, 4 + 10)
  })

  it('reports remaining and reset of an admitted request', async (store) => {
    const k = uid()
    const c = () => [rate(k, 10, 10)]
    const first = await store.check(c(), T0)
    assert.deepEqual([first.allowed, first.results[0].remaining, first.results[0].resetMs], [true, 9, 1000])
    await store.check(c(), T0)
    const third = await store.check(c(), T0)
    assert.deepEqual([third.results[0].remaining, third.results[0].resetMs], [7, 3000])
  })

  it('tells a denied request exactly when it would conform', async (store) => {
    const k = uid()
    const c = () => [rate(k, 3, 1, 3)] // interval 333.333 ms → 333 333 µs
    assert.equal(await admitted(store, c, 3, T0), 3)
    const denied = await store.check(c(), T0 + 100)
    assert.equal(denied.allowed, false)
    assert.equal(denied.denied, 0)
    assert.equal(denied.retryAfterMs, 234) // ceil(333.333 − 100)
    assert.equal((await store.check(c(), T0 + 100 + 233)).allowed, false)
    assert.equal((await store.check(c(), T0 + 100 + 234)).allowed, true)
  })

  it('consumes nothing from any policy when one of them denies', async (store) => {
    const k = uid()
    const both = () => [rate(k, 10, 10), quota(k, 2, 'day')]
    assert.equal((await store.check(both(), T0)).allowed, true)
    assert.equal((await store.check(both(), T0)).allowed, true)
    const third = await store.check(both(), T0)
    assert.equal(third.allowed, false)
    assert.equal(third.denied, 1)
    // The rate admitted the third request but was not charged for it: 2 used, this is the 3rd.
    assert.equal((await store.check([rate(k, 10, 10)], T0)).results[0].remaining, 7)

    const j = uid()
    const other = () => [quota(j, 5, 'day'), rate(j, 1, 60)]
    assert.equal((await store.check(other(), T0)).allowed, true)
    assert.equal((await store.check(other(), T0)).allowed, false) // the rate denies
    assert.equal((await store.check([quota(j, 5, 'day')], T0)).results[0].remaining, 3)
  })

  it('reports the denying check with the longest wait', async (store) => {
    const k = uid()
    const c = () => [rate(`${k}a`, 1, 1), rate(`${k}b`, 1, 10), rate(`${k}c`, 1, 5)]
    assert.equal((await store.check(c(), T0)).allowed, true)
    const d = await store.check(c(), T0)
    assert.equal(d.allowed, false)
    assert.equal(d.denied, 1)
    assert.equal(d.retryAfterMs, 10_000)
  })

  it("keeps keys apart: one key's exhaustion never limits another", async (store) => {
    const a = uid()
    const b = uid()
    assert.equal(await admitted(store, () => [rate(a, 5, 60), quota(a, 5, 'day')], 10, T0), 5)
    assert.equal(await admitted(store, () => [rate(b, 5, 60), quota(b, 5, 'day')], 10, T0), 5)
  })

  it('counts a daily quota per UTC day and starts afresh at midnight', async (store) => {
    const k = uid()
    const c = () => [quota(k, 3, 'day')]
    const before = utc('2031-01-31T23:59:59.999Z')
    assert.equal(await admitted(store, c, 5, before - 10_000), 3)
    const d = await store.check(c(), before)
    assert.deepEqual([d.allowed, d.retryAfterMs, d.results[0].resetMs], [false, 1, 1])
    const next = await store.check(c(), before + 1)
    assert.deepEqual([next.allowed, next.results[0].remaining, next.results[0].resetMs], [true, 2, 86_400_000])
  })

  it('counts an hourly quota per UTC hour', async (store) => {
    const k = uid()
    const c = () => [quota(k, 2, 'hour')]
    assert.equal(await admitted(store, c, 3, utc('2031-03-01T10:00:00.000Z')), 2)
    assert.equal(await admitted(store, c, 3, utc('2031-03-01T10:59:59.999Z')), 0)
    assert.equal(await admitted(store, c, 3, utc('2031-03-01T11:00:00.000Z')), 2)
  })

  it('counts a monthly quota per calendar month, leap years and year ends included', async (store) => {
    const cases: Array<[string, string, number]> = [
      ['2028-02-29T23:59:59.999Z', '2028-03-01T00:00:00.000Z', 29 * 86_400_000], // leap February
      ['2031-02-28T23:59:59.999Z', '2031-03-01T00:00:00.000Z', 28 * 86_400_000],
      ['2030-12-31T23:59:59.999Z', '2031-01-01T00:00:00.000Z', 31 * 86_400_000],
      ['2100-02-28T23:59:59.999Z', '2100-03-01T00:00:00.000Z', 28 * 86_400_000], // 2100 is not a leap year
    ]
    for (const [last, first, monthMs] of cases) {
      const k = uid()
      const c = () => [quota(k, 2, 'month')]
      const start = Date.UTC(new Date(last).getUTCFullYear(), new Date(last).getUTCMonth(), 1)
      const opening = await store.check(c(), start)
      assert.equal(opening.results[0].resetMs, monthMs, `window length of the month of ${last}`)
      assert.equal(await admitted(store, c, 3, utc(last)), 1, `${last}: one left in the month`)
      const next = await store.check(c(), utc(first))
      assert.equal(next.allowed, true, `${first} opens a new month`)
      assert.equal(next.results[0].remaining, 1)
    }
  })

  it('caps requests in flight and frees a slot on release', async (store) => {
    const k = uid()
    const held = []
    for (let i = 0; i < 3; i++) held.push(await store.check([slot(k, 3, 60_000)], T0))
    assert.ok(held.every((d) => d.allowed && d.release))
    assert.deepEqual(
      held.map((d) => d.results[0].remaining),
      [2, 1, 0],
    )
    const full = await store.check([slot(k, 3, 60_000)], T0)
    assert.equal(full.allowed, false)
    assert.ok(full.retryAfterMs > 0)
    held[0].release!()
    held[0].release!() // idempotent: a second call frees nothing more
    await settle(store)
    assert.equal((await store.check([slot(k, 3, 60_000)], T0)).allowed, true)
    assert.equal((await store.check([slot(k, 3, 60_000)], T0)).allowed, false)
  })

  it('frees a leaked concurrency slot after its lease', async (store) => {
    const k = uid()
    assert.equal((await store.check([slot(k, 1, 30_000)], T0)).allowed, true) // never released
    assert.equal((await store.check([slot(k, 1, 30_000)], T0 + 29_999)).allowed, false)
    assert.equal((await store.check([slot(k, 1, 30_000)], T0 + 30_000)).allowed, true)
  })

  it('takes no concurrency slot for a request another policy denies', async (store) => {
    const k = uid()
    const c = () => [slot(k, 2, 60_000), quota(k, 1, 'day')]
    assert.equal((await store.check(c(), T0)).allowed, true)
    assert.equal((await store.check(c(), T0)).allowed, false)
    // One slot is held (by the first); the denied one took none, so one is still free.
    assert.equal((await store.check([slot(k, 2, 60_000)], T0)).allowed, true)
  })

  it('throttles a key past the failure threshold with a doubling delay, then locks it', async (store) => {
    const k = `f:${uid()}`
    const outcomes = []
    for (let i = 0; i < 8; i++) outcomes.push((await store.recordFailures([k], BF, T0))[0])
    assert.deepEqual(
      outcomes.map((o) => [o.score, o.blocked, o.locked, o.newlyLocked, o.retryAfterMs]),
      [
        [1, false, false, false, 0],
        [2, false, false, false, 0],
        [3, false, false, false, 0],
        [4, true, false, false, 1000],
        [5, true, false, false, 2000],
        [6, true, true, true, 600_000],
        [6, true, true, false, 600_000], // the score is capped; the lock is not announced twice
        [6, true, true, false, 600_000],
      ],
    )
  })

  it('a guard denies while its key is blocked and, when asked, counts the attempt', async (store) => {
    const k = uid()
    for (let i = 0; i < 4; i++) await store.recordFailures([`f:${k}`], BF, T0)
    const quiet = await store.check([guard(k)], T0 + 10)
    assert.deepEqual([quiet.allowed, quiet.retryAfterMs, quiet.results[0].locked], [false, 990, false])
    assert.equal((await store.check([guard(k)], T0 + 1000)).allowed, true) // throttle over
    // Hammering while throttled: each denied attempt counts, up to a lockout.
    await store.recordFailures([`f:${k}`], BF, T0 + 1000) // score 5 → blocked 2 s
    const hammer = await store.check([guard(k, true)], T0 + 1001) // score 6 → locked
    assert.deepEqual([hammer.allowed, hammer.results[0].locked, hammer.results[0].newlyLocked, hammer.retryAfterMs], [false, true, true, 600_000])
    const again = await store.check([guard(k, true)], T0 + 1002)
    assert.deepEqual([again.results[0].newlyLocked, again.retryAfterMs], [false, 600_000]) // lock extended
  })

  it('a guard that admits consumes nothing and does not stop other checks', async (store) => {
    const k = uid()
    const d = await store.check([guard(k, true), rate(k, 5, 60)], T0)
    assert.deepEqual([d.allowed, d.results[1].remaining], [true, 4])
    const after = await store.recordFailures([`f:${k}`], BF, T0)
    assert.equal(after[0].score, 1)
  })

  it('lets failure scores drain over the window and lockouts expire', async (store) => {
    const k = `f:${uid()}`
    for (let i = 0; i < 6; i++) await store.recordFailures([k], BF, T0)
    assert.equal((await store.check([{ ...guard('x'), key: k }], T0 + 599_999)).allowed, false)
    assert.equal((await store.check([{ ...guard('x'), key: k }], T0 + 600_000)).allowed, true)
    // Score drains by threshold (3) per window (60 s): after 10 min it is back to zero.
    const o = await store.recordFailures([k], BF, T0 + 600_000)
    assert.deepEqual([o[0].score, o[0].blocked], [1, false])
  })

  it('records failures for several keys at once and clears them', async (store) => {
    const ip = `f:${uid()}`
    const account = `f:${uid()}`
    let last
    for (let i = 0; i < 4; i++) last = await store.recordFailures([ip, account], BF, T0)
    assert.deepEqual(
      last!.map((o) => o.blocked),
      [true, true],
    )
    await store.clearFailures([account])
    const d = await store.check([{ ...guard('x'), key: ip }, { ...guard('y'), key: account }], T0 + 1)
    assert.deepEqual([d.allowed, d.denied, d.results[1].retryAfterMs], [false, 0, 0])
  })
}

/** Lets a fire-and-forget release reach the store before the next check. */
async function settle(store: LimitStore): Promise<void> {
  if (store.kind === 'memory') return
  // A no-op check on a throwaway key queues behind the release on the same connection.
  await store.check([{ kind: 'quota', key: `q:settle:${uid()}`, limit: 1, period: 'hour' }], T0)
}
