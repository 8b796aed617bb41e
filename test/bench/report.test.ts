import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ceilingRps, ceilings, equalLoadTable, evaluate, verdicts, type CheckResult, type EqualLoadResult, type RowResult } from '../../bench/report.js'
import type { LoadResult } from '../../bench/load.js'
import type { Target } from '../../bench/target.js'

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

test('a verdict is judged on the whole run and shows how far the ratio moved from round to round', () => {
  const run = (rps: number, p99Ms: number) => ({ rps, p99Ms }) as LoadResult
  const measuredRow = (id: string, whole: LoadResult, rounds: LoadResult[]): RowResult => ({ ...row(id, 50, 40, 50), run: whole, rounds })
  const targets = [
    { id: 'bare' },
    { id: 'gw', checks: [{ label: 'gw >= 0.9x bare', metric: 'rps', op: '>=', factor: 0.9, against: 'bare' }] },
  ] as unknown as Target[]
  const rows = [
    measuredRow('bare', run(1000, 10), [run(800, 10), run(1200, 10)]),
    measuredRow('gw', run(850, 12), [run(880, 12), run(820, 12)]),
  ]
  const [check] = evaluate(targets, rows)
  assert.equal(check.pass, false, '0.85x over the whole run')
  assert.deepEqual(check.roundRatios?.map((r) => r.toFixed(3)), ['1.100', '0.683'])
  assert.match(verdicts([check]), /^FAIL {2}gw >= 0\.9x bare {2}\(0\.85x: 850\.0 vs 1000\.0; rounds 0\.68–1\.10x\)$/)
  // Rows with different numbers of rounds (or one round) give no spread.
  const [single] = evaluate(targets, [measuredRow('bare', run(1000, 10), [run(1000, 10)]), measuredRow('gw', run(950, 12), [run(950, 12)])])
  assert.equal(single.roundRatios, undefined)
  assert.match(verdicts([single]), /^PASS {2}gw >= 0\.9x bare {2}\(0\.95x: 950\.0 vs 1000\.0\)$/)
})

test('an equal-load check compares the equal-load runs, and only rows that kept up with the rate', () => {
  const run = (rps: number, p50Ms: number, p99Ms: number) => ({ rps, p50Ms, p99Ms, responses: rps, errors: 0, non2xx: 0 }) as LoadResult
  const equal = (r: LoadResult, problem?: string): EqualLoadResult => ({ rate: 500, run: r, rounds: [r], driverLagMaxMs: 2, ...(problem && { problem }) })
  const targets = [
    { id: 'bare' },
    {
      id: 'gw',
      checks: [
        { label: 'saturated', metric: 'p99Ms', op: '<=', factor: 1.2, against: 'bare' },
        { label: 'equal', metric: 'p99Ms', op: '<=', factor: 1.2, against: 'bare', at: 'equal-load' },
      ],
    },
  ] as unknown as Target[]
  // Saturated, the gateway's p99 is 1.5x the bare proxy's; at the same offered rate, 1.1x.
  const rows = (gwEqual: EqualLoadResult | undefined): RowResult[] => [
    { ...row('bare', 50, 40, 50), run: run(1000, 5, 10), equalLoad: equal(run(500, 0.3, 4)) },
    { ...row('gw', 60, 50, 50), run: run(800, 6, 15), ...(gwEqual && { equalLoad: gwEqual }) },
  ]
  const [saturated, atEqual] = evaluate(targets, rows(equal(run(500, 0.4, 4.4))))
  assert.equal(saturated.pass, false)
  assert.equal(saturated.ratio, 1.5)
  assert.equal(atEqual.pass, true)
  assert.equal(atEqual.ratio?.toFixed(2), '1.10')
  // A row that fell behind the schedule was saturated after all: its latencies do not compare.
  const [, behind] = evaluate(targets, rows(equal(run(400, 3, 40), 'answered 400 req/s of the 500 offered: saturated')))
  assert.equal(behind.pass, undefined)
  const [, missing] = evaluate(targets, rows(undefined))
  assert.equal(missing.pass, undefined)

  const text = equalLoadTable(rows(equal(run(400, 3, 40), 'answered 400 req/s of the 500 offered: saturated')))
  assert.ok(text)
  assert.match(text, /^bare\s+500\s+500\s+0\.30\s+4\.00\s+0\/0\s+1\.00\s+1\.00\s+2\.0$/m)
  assert.match(text, /^gw \(NOT COMPARABLE\)\s+500\s+400\s+3\.00\s+40\.00\s+0\/0\s+-\s+-\s+2\.0$/m)
  assert.match(text, /gw: answered 400 req\/s of the 500 offered: saturated/)
  assert.equal(equalLoadTable([row('bare', 50, 40, 50)]), undefined)
})

test('with three rounds or more, an equal-load verdict is the median of the rounds\' ratios: one stalled round does not decide it', () => {
  const run = (p99Ms: number) => ({ rps: 500, p50Ms: 0.3, p99Ms, responses: 1000, errors: 0, non2xx: 0 }) as LoadResult
  const target = [{ id: 'bare' }, { id: 'gw', checks: [{ label: 'equal', metric: 'p99Ms', op: '<=', factor: 1.2, against: 'bare', at: 'equal-load' }] }] as unknown as Target[]
  const rowsWith = (bare: number[], gw: number[], gwWhole: number): RowResult[] => [
    { ...row('bare', 50, 40, 50), run: run(10), equalLoad: { rate: 500, run: run(Math.max(...bare)), rounds: bare.map(run), driverLagMaxMs: 1 } },
    { ...row('gw', 60, 50, 50), run: run(12), equalLoad: { rate: 500, run: run(gwWhole), rounds: gw.map(run), driverLagMaxMs: 1 } },
  ]
  // Round 2 of the gateway hit a 120 ms stall: the whole run's p99 is the stall, the median ratio is 1.1.
  const [stalled] = evaluate(target, rowsWith([4, 5, 4], [4.4, 120, 4.4], 110))
  assert.equal(stalled.medianRatio?.toFixed(2), '1.10')
  assert.equal(stalled.pass, true)
  assert.equal(stalled.ratio?.toFixed(0), '22')
  assert.match(verdicts([stalled]), /^PASS {2}equal {2}\(median of rounds 1\.10x; whole run 22\.00x: 110\.0 vs 5\.0; rounds 1\.10–24\.00x\)$/)
  // A gateway slower in most rounds fails, whatever one round says.
  const [slower] = evaluate(target, rowsWith([4, 4, 4], [6, 3, 6], 6))
  assert.equal(slower.medianRatio, 1.5)
  assert.equal(slower.pass, false)
  // Two rounds: no median, the whole run decides.
  const [two] = evaluate(target, rowsWith([4, 5], [4.4, 120], 110))
  assert.equal(two.medianRatio, undefined)
  assert.equal(two.pass, false)
})
