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
  /** The part of cpuUsPerResponse spent on the server's main thread. */
  readonly mainCpuUsPerResponse?: number
  /** CPU of the upstream and the load generator per response, during the same rounds. */
  readonly restCpuUsPerResponse?: number
  /** The upstream's part of restCpuUsPerResponse. */
  readonly upstreamCpuUsPerResponse?: number
  /** Each measured round on its own, in order (round i of every row ran in the same pass). */
  readonly rounds?: ReadonlyArray<Pick<LoadResult, 'rps' | 'p99Ms'>>
  /** The equal-load rounds, for rows an `at: 'equal-load'` check compares. */
  readonly equalLoad?: EqualLoadResult
}

/** A row's runs at the fixed rate every row of the equal-load phase is offered. */
export interface EqualLoadResult {
  /** Requests per second offered. */
  readonly rate: number
  readonly run: LoadResult
  readonly rounds: ReadonlyArray<Pick<LoadResult, 'rps' | 'p99Ms'>>
  /** The longest the paced driver's own event loop was late in any of the rounds, in ms. */
  readonly driverLagMaxMs: number
  /** Why these runs cannot be compared (the row fell behind the schedule, or answered errors). */
  readonly problem?: string
}

export interface CheckResult {
  readonly label: string
  readonly metric: Check['metric']
  readonly row: string
  readonly against: string
  readonly value?: number
  readonly reference?: number
  readonly ratio?: number
  /** undefined when a row is missing or invalid: the check cannot be judged. */
  readonly pass?: boolean
  /** The same ratio within each round, when both rows have the same rounds: how much it moves. */
  readonly roundRatios?: readonly number[]
  /** Equal-load checks with three rounds or more: the verdict is on the median of roundRatios. */
  readonly medianRatio?: number
}

const measured = (r: RowResult | undefined): LoadResult | undefined => (r && r.status === 'ok' ? r.run : undefined)

/** The runs of a row a check compares, with their rounds. */
function runsFor(c: Check, r: RowResult | undefined): { run: LoadResult; rounds?: RowResult['rounds'] } | undefined {
  if (c.at !== 'equal-load') {
    const run = measured(r)
    return run && { run, rounds: r!.rounds }
  }
  const e = r?.status === 'ok' ? r.equalLoad : undefined
  return e && e.problem === undefined ? { run: e.run, rounds: e.rounds } : undefined
}

export function evaluate(targets: readonly Target[], rows: readonly RowResult[]): CheckResult[] {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const out: CheckResult[] = []
  for (const t of targets) {
    for (const c of t.checks ?? []) out.push(judge(c, t.id, byId.get(t.id), byId.get(c.against)))
  }
  return out
}

function judge(c: Check, row: string, mineRow: RowResult | undefined, theirsRow: RowResult | undefined): CheckResult {
  const base = { label: c.label, metric: c.metric, row, against: c.against }
  const mineRuns = runsFor(c, mineRow)
  const theirsRuns = runsFor(c, theirsRow)
  if (!mineRuns || !theirsRuns) return base
  const value = mineRuns.run[c.metric]
  const reference = theirsRuns.run[c.metric]
  const ratio = reference > 0 ? value / reference : Number.POSITIVE_INFINITY
  const pass = c.op === '>=' ? value >= c.factor * reference : value <= c.factor * reference
  // The verdict uses the whole run; the per-round ratios only show how far the machine moved it.
  const a = mineRuns.rounds
  const b = theirsRuns.rounds
  const comparable = a && b && a.length === b.length && a.length > 1 && b.every((r) => r[c.metric] > 0)
  const roundRatios = comparable ? a.map((r, i) => r[c.metric] / b[i][c.metric]) : undefined
  // At equal load a p99 is the machine's rarest stalls: one stall of a hundred milliseconds in a
  // round is a few percent of its requests, and decides that round's p99 whichever row it hits.
  // The median of the rounds' ratios is not moved by one such round; the whole run is.
  if (c.at === 'equal-load' && roundRatios && roundRatios.length >= 3) {
    const medianRatio = median(roundRatios)
    return { ...base, value, reference, ratio, pass: c.op === '>=' ? medianRatio >= c.factor : medianRatio <= c.factor, roundRatios, medianRatio }
  }
  return { ...base, value, reference, ratio, pass, ...(roundRatios && { roundRatios }) }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
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
  return columns(head, body)
}

/** Rows as aligned text columns under a dashed rule: the first left-aligned, the rest right-aligned. */
function columns(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

/** The equal-load phase's table: the same offered rate for every row in it. */
export function equalLoadTable(rows: readonly RowResult[]): string | undefined {
  const those = rows.filter((r) => r.equalLoad !== undefined)
  if (those.length === 0) return undefined
  const base = those.find((r) => r.baseline)?.equalLoad
  const head = ['target', 'offered', 'req/s', 'p50 ms', 'p99 ms', 'err/non-2xx', 'x bare p50', 'x bare p99', 'driver lag max ms']
  const body = those.map((r) => {
    const e = r.equalLoad!
    const comparable = base && base.problem === undefined && e.problem === undefined
    return [
      r.label + (e.problem ? ' (NOT COMPARABLE)' : ''),
      fmt(e.rate),
      fmt(e.run.rps),
      fmt(e.run.p50Ms, 2),
      fmt(e.run.p99Ms, 2),
      `${e.run.errors}/${e.run.non2xx}`,
      comparable ? fmt(e.run.p50Ms / base.run.p50Ms, 2) : '-',
      comparable ? fmt(e.run.p99Ms / base.run.p99Ms, 2) : '-',
      fmt(e.driverLagMaxMs, 1),
    ]
  })
  const problems = those.filter((r) => r.equalLoad!.problem).map((r) => `  ${r.id}: ${r.equalLoad!.problem}`)
  return [columns(head, body), ...problems].join('\n')
}

export function verdicts(checks: readonly CheckResult[]): string {
  return checks
    .map((c) => {
      const word = c.pass === undefined ? 'N/A ' : c.pass ? 'PASS' : 'FAIL'
      const spread = c.roundRatios ? `; rounds ${fmt(Math.min(...c.roundRatios), 2)}–${fmt(Math.max(...c.roundRatios), 2)}x` : ''
      const whole = `${fmt(c.ratio, 2)}x: ${fmt(c.value, 1)} vs ${fmt(c.reference, 1)}${spread}`
      const detail =
        c.ratio === undefined ? '(a row is missing or invalid)' : c.medianRatio !== undefined ? `(median of rounds ${fmt(c.medianRatio, 2)}x; whole run ${whole})` : `(${whole})`
      return `${word}  ${c.label}  ${detail}`
    })
    .join('\n')
}

/**
 * The req/s a row could reach at most with the CPU its responses cost in this run: every process
 * of the row shares the machine's cores, and the server's main thread (one event loop) can use at
 * most one of them. Redis, when a row uses it, is not counted, so its ceiling is too high.
 */
export function ceilingRps(row: RowResult, cores: number): number | undefined {
  const { cpuUsPerResponse: server, mainCpuUsPerResponse: main, restCpuUsPerResponse: rest } = row
  if (row.status !== 'ok' || server === undefined || main === undefined || rest === undefined) return undefined
  return Math.min((cores * 1e6) / (server + rest), 1e6 / main)
}

/**
 * For each req/s check: the ratio the two rows' CPU costs allow at most on this machine. A FAIL
 * whose ceiling is under the target is a cost to cut, not noise; a FAIL with a ceiling above it is
 * worth running again.
 */
export function ceilings(rows: readonly RowResult[], checks: readonly CheckResult[], cores: number): string | undefined {
  const byId = new Map(rows.map((r) => [r.id, r]))
  const lines: string[] = []
  for (const c of checks) {
    if (c.metric !== 'rps') continue
    const mine = byId.get(c.row)
    const theirs = byId.get(c.against)
    const a = mine && ceilingRps(mine, cores)
    const b = theirs && ceilingRps(theirs, cores)
    if (a === undefined || b === undefined) continue
    lines.push(`  ${c.label}: at most ${fmt(a / b, 2)}x (${fmt(a)} vs ${fmt(b)} req/s)`)
  }
  if (lines.length === 0) return undefined
  return [`CPU ceilings on ${cores} cores (what each row's measured CPU per response allows; Redis not counted):`, ...lines].join('\n')
}
