import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ceilingRps, ceilings, type CheckResult, type RowResult } from '../../bench/report.js'

/** The bench's CPU ceilings: what a row's measured CPU per response allows on the machine's cores. */

const row = (id: string, server: number, main: number, rest: number, status: RowResult['status'] = 'ok'): RowResult => ({
  id,
  label: id,
  baseline: id === 'bare',
  status,
  problems: [],
  notes: [],
  cpuUsPerResponse: server,
  mainCpuUsPerResponse: main,
  restCpuUsPerResponse: rest,
})

test('a row is bounded by all its processes sharing the cores, or by its one event loop', () => {
  // 2 cores, 50 + 50 µs per response: the cores allow 20,000 req/s, the main thread 25,000.
  assert.equal(ceilingRps(row('bare', 50, 40, 50), 2), 20_000)
  // 100 µs on the main thread alone caps at 10,000 req/s although the cores would allow 13,333.
  assert.equal(ceilingRps(row('gw', 100, 100, 50), 2), 10_000)
  assert.equal(ceilingRps(row('gw', 100, 100, 50, 'invalid'), 2), undefined)
  assert.equal(ceilingRps({ ...row('gw', 100, 100, 50), restCpuUsPerResponse: undefined }, 2), undefined)
})

test('ceilings are given for req/s checks only, as the ratio of the two rows', () => {
  const rows = [row('bare', 50, 40, 50), row('gw', 100, 100, 50)]
  const check = (metric: CheckResult['metric']): CheckResult => ({ label: `check ${metric}`, metric, row: 'gw', against: 'bare' })
  const text = ceilings(rows, [check('rps'), check('p99Ms')], 2)
  assert.ok(text)
  assert.match(text, /check rps: at most 0\.50x \(10000 vs 20000 req\/s\)/)
  assert.doesNotMatch(text, /p99Ms/)
  assert.equal(ceilings(rows, [check('p99Ms')], 2), undefined)
})
