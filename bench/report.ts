import type { LoadResult } from './load.js'
import type { Check, Target, UpstreamStats } from './target.js'

/** The outcome of one row. */
export interface RowResult {
  readonly id: string
  readonly label: string
  readonly baseline: boolean
  /** ok: measured and valid. invalid: measured, but the run breaks the row's rules (e.g. a non-2xx
   *  in a gateway row). error: could not be measured (did not start, probe refused). */
  readonly status: 'ok' | 'invalid' | 'error'
  readonly run?: LoadResult
  readonly upstream?: UpstreamStats
  readonly problems: readonly string[]
  readonly notes: readonly string[]
  readonly files?: Record<string, string>
  /** CPU time of the server process per response, in µs (Linux /proc): steadier than req/s on a busy machine. */
  readonly cpuUsPerResponse?: number
}

export interface CheckResult {
  readonly label: string
  readonly row: string
  readonly against: string
  readonly value?: number
  readonly reference?: number
  readonly ratio?: number
  /** undefined when a row is missing or invalid: the check cannot be judged. */
  readonly pass?: boolean
}

const measured = (r: RowResult | undefined): LoadResult | undefined => (r && r.status === 'ok' ? r.run : undefined)

export function evaluate(targets: readonly Target[], rows: readonly RowResult[]): CheckResult[] {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const out: CheckResult[] = []
  for (const t of targets) {
    for (const c of t.checks ?? []) out.push(judge(c, t.id, measured(byId.get(t.id)), measured(byId.get(c.against))))
  }
  return out
}

function judge(c: Check, row: string, mine: LoadResult | undefined, theirs: LoadResult | undefined): CheckResult {
  const base = { label: c.label, row, against: c.against }
  if (!mine || !theirs) return base
  const value = mine[c.metric]
  const reference = theirs[c.metric]
  const ratio = reference > 0 ? value / reference : Number.POSITIVE_INFINITY
  const pass = c.op === '>=' ? value >= c.factor * reference : value <= c.factor * reference
  return { ...base, value, reference, ratio, pass }
}

const fmt = (n: number | undefined, digits = 0): string => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits))

export function table(rows: readonly RowResult[]): string {
  const base = measured(rows.find((r) => r.baseline))
  const head = ['target', 'req/s', 'p50 ms', 'p99 ms', 'err/non-2xx', 'x bare req/s', 'x bare p99']
  const body = rows.map((r) => {
    const run = r.run
    if (!run) return [`${r.label} (NOT MEASURED)`, '-', '-', '-', '-', '-', '-']
    const invalid = r.status !== 'ok' ? ' (INVALID)' : ''
    return [
      r.label + invalid,
      fmt(run.rps),
      fmt(run.p50Ms, 1),
      fmt(run.p99Ms, 1),
      `${run.errors}/${run.non2xx}`,
      base && r.status === 'ok' ? fmt(run.rps / base.rps, 2) : '-',
      base && r.status === 'ok' ? fmt(run.p99Ms / base.p99Ms, 2) : '-',
    ]
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

export function verdicts(checks: readonly CheckResult[]): string {
  return checks
    .map((c) => {
      const word = c.pass === undefined ? 'N/A ' : c.pass ? 'PASS' : 'FAIL'
      const detail = c.ratio === undefined ? '(a row is missing or invalid)' : `(${fmt(c.ratio, 2)}x: ${fmt(c.value, 1)} vs ${fmt(c.reference, 1)})`
      return `${word}  ${c.label}  ${detail}`
    })
    .join('\n')
}
