// `npm run bench`: one run, on loopback, of every target in targets/index.ts against the same
// upstream, then a table, the issue's targets as PASS/FAIL lines, and a JSON file under .tmp/.
// See docs/benchmarks.md for what is measured and how to read it.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnServer, type ChildServer } from './child.js'
import { startIssuer } from './keys.js'
import { combine, drive, type LoadResult } from './load.js'
import { startPacedDriver, type PacedResult } from './paced.js'
import { ceilings, equalLoadTable, evaluate, table, verdicts, type EqualLoadResult, type RowResult } from './report.js'
import { tokenPool, type BenchContext, type RunningTarget, type Target, type UpstreamStats } from './target.js'
import { benchScript, listeningUrl } from './targets/common.js'
import { allTargets } from './targets/index.js'

function intEnv(name: string, def: number, min: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return def
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min} (got ${raw})`)
  return Math.floor(n)
}

const settings = {
  durationSec: intEnv('BENCH_DURATION', 10, 1),
  warmupSec: intEnv('BENCH_WARMUP', 2, 1),
  rounds: intEnv('BENCH_ROUNDS', 3, 1),
  connections: intEnv('BENCH_CONNECTIONS', 64, 1),
  // Fixed total request rate (0 = as fast as the row answers): below saturation, the server CPU
  // per response is measured without the rows fighting autocannon for the cores.
  rate: intEnv('BENCH_RATE', 0, 0),
  warmTokens: intEnv('BENCH_WARM_TOKENS', 16, 1),
  // Enough for the cold row's warm-up and measured time at about 15k new tokens/s; signing stops
  // at the budget on a machine that signs slowly (and there the row is slower too).
  // Per cold row (the cold ablation row is a second one); they draw on one pool.
  coldTokens: intEnv('BENCH_COLD_TOKENS', 100_000, 1_000),
  coldSignSec: intEnv('BENCH_COLD_SIGN_SEC', 60, 1),
  upstreamConnections: 64,
  publicRoutes: process.env.BENCH_PUBLIC === '1',
  only: (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  profile: process.env.BENCH_PROFILE === '1',
  keepFiles: process.env.BENCH_KEEP === '1' || process.env.BENCH_PROFILE === '1',
  enforce: process.env.BENCH_ENFORCE === '1',
  // The equal-load phase: rows compared by an `at: 'equal-load'` check are each offered this
  // share (in %) of the slower one's saturated req/s, for this many seconds in all; 0 skips it.
  equalSharePct: intEnv('BENCH_EQUAL_SHARE', 50, 1),
  equalSec: intEnv('BENCH_EQUAL_SEC', 12, 0),
  // More rounds than the saturated phase: its verdict is the median of the rounds' ratios.
  equalRounds: intEnv('BENCH_EQUAL_ROUNDS', 6, 1),
}

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const RESULTS = join(REPO, '.tmp', 'bench', 'latest.json')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const log = (s = '') => process.stdout.write(s + '\n')

function loud(lines: string[]): void {
  const bar = '!'.repeat(78)
  process.stderr.write(`\n${bar}\n${lines.map((l) => `!! ${l}`).join('\n')}\n${bar}\n\n`)
}

/** 'row' makes the upstream count what follows under `id`; 'stats' reads that row's counters. */
async function upstreamCall(url: string, what: 'row' | 'stats', id: string): Promise<UpstreamStats> {
  const r = await fetch(`${url}/__bench/${what}?id=${encodeURIComponent(id)}`, { method: what === 'row' ? 'POST' : 'GET' })
  return (await r.json()) as UpstreamStats
}

/** One row while the bench runs: its process, its measured rounds, what went wrong. */
interface Live {
  readonly target: Target
  running?: RunningTarget
  readonly runs: LoadResult[]
  upstream: UpstreamStats
  readonly problems: string[]
  failed: boolean
  /** CPU time (ms) the row's server process spent during its measured rounds. */
  cpuMs: number
  /** The part of cpuMs spent on the process's main thread (the rest: GC helpers, libuv pool). */
  mainCpuMs: number
  /** CPU time (ms) the rest of the bench spent meanwhile: the upstream and the load generator. */
  restCpuMs: number
  /** The upstream's part of restCpuMs. */
  upstreamCpuMs: number
  /** Read and write system calls of the row's server process during its measured rounds. */
  syscalls: { reads: number; writes: number } | undefined
  /** The equal-load rounds (only rows an equal-load check compares), and the rate offered. */
  equalRuns: PacedResult[]
  equalRate: number
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc (Linux). The bench also
 * reports CPU per response: unlike req/s, it barely moves when other work shares the machine.
 */
function processCpuMs(pid: number | undefined): { total: number; main: number } | undefined {
  if (pid === undefined) return undefined
  try {
    // The task entry of the thread whose id is the pid is the main thread (proc(5)).
    return { total: statCpuMs(`/proc/${pid}/stat`), main: statCpuMs(`/proc/${pid}/task/${pid}/stat`) }
  } catch {
    return undefined
  }
}

/**
 * Read and write system calls a process has made so far (/proc/PID/io: syscr, syscw; socket
 * reads and writes included, and those of the process's other threads, such as log writes).
 * They move much less with the machine's load than CPU time (how many requests one event-loop
 * turn batches can still change them), and each one costs the kernel work that CPU per response
 * includes (a loopback write wakes the peer), so the count per response explains differences
 * between rows.
 */
function processSyscalls(pid: number | undefined): { reads: number; writes: number } | undefined {
  if (pid === undefined) return undefined
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN)
    const counts = { reads: field('syscr'), writes: field('syscw') }
    return Number.isFinite(counts.reads) && Number.isFinite(counts.writes) ? counts : undefined
  } catch {
    return undefined
  }
}

/** CPU time (ms) of the upstream process and of this one (autocannon runs here). */
function restCpuMs(upstreamPid: number | undefined): { upstream: number; load: number } | undefined {
  if (upstreamPid === undefined) return undefined
  try {
    const self = process.cpuUsage()
    return { upstream: statCpuMs(`/proc/${upstreamPid}/stat`), load: (self.user + self.system) / 1000 }
  } catch {
    return undefined
  }
}

function statCpuMs(file: string): number {
  const stat = readFileSync(file, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[11] = utime, fields[12] = stime (proc(5) fields 14 and 15), in clock ticks (100/s).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
}

const noStats: UpstreamStats = { requests: 0, distinctAuthorization: 0, missingAuthorization: 0 }

/** Starts a row, sends the probe request, and runs its warm-up. */
async function prepare(live: Live, ctx: BenchContext, upstreamUrl: string): Promise<void> {
  const { target } = live
  try {
    live.running = await target.start(ctx)
  } catch (err) {
    live.failed = true
    live.problems.push(`did not start: ${(err as Error).message}`)
    return
  }
  const running = live.running
  try {
    const warmup = target.load('warmup', { index: 0, of: 1 })
    // One request before any load: a refusal here means the row is misconfigured, and its body
    // says why, which autocannon's counters would not.
    const auth = target.probe?.()
    const probe = await fetch(running.url + warmup.path, { headers: auth ? { authorization: auth } : {} })
    const probeBody = await probe.text()
    if (probe.status < 200 || probe.status > 299) {
      live.failed = true
      live.problems.push(`probe request answered ${probe.status}: ${probeBody.slice(0, 400)}`)
      return
    }
    const refused = target.refusal?.()
    if (refused) {
      const r = await fetch(running.url + warmup.path, { headers: { authorization: refused } })
      await r.body?.cancel()
      if (r.status !== 401) {
        live.failed = true
        live.problems.push(`a token with a broken signature got ${r.status}, not 401: this row does not verify tokens`)
        return
      }
    }
    await upstreamCall(upstreamUrl, 'row', `${target.id}:warmup`)
    await drive(running.url, warmup, { connections: settings.connections, durationSec: settings.warmupSec, rate: settings.rate })
  } catch (err) {
    live.failed = true
    live.problems.push(`${(err as Error).message}\n${running.tail()}`)
  }
}

/** One measured round of a row; upstream counters are taken around it. */
async function round(live: Live, index: number, upstream: ChildServer): Promise<void> {
  const running = live.running!
  const upstreamUrl = upstream.url
  try {
    await upstreamCall(upstreamUrl, 'row', live.target.id)
    const spec = live.target.load('measure', { index, of: settings.rounds })
    const cpu0 = processCpuMs(running.pid)
    const rest0 = restCpuMs(upstream.pid)
    const sys0 = processSyscalls(running.pid)
    const run = await drive(running.url, spec, { connections: settings.connections, durationSec: settings.durationSec / settings.rounds, rate: settings.rate })
    const cpu1 = processCpuMs(running.pid)
    const rest1 = restCpuMs(upstream.pid)
    const sys1 = processSyscalls(running.pid)
    if (cpu0 !== undefined && cpu1 !== undefined) {
      live.cpuMs += cpu1.total - cpu0.total
      live.mainCpuMs += cpu1.main - cpu0.main
    }
    if (sys0 !== undefined && sys1 !== undefined) {
      const s = (live.syscalls ??= { reads: 0, writes: 0 })
      s.reads += sys1.reads - sys0.reads
      s.writes += sys1.writes - sys0.writes
    }
    if (rest0 !== undefined && rest1 !== undefined) {
      live.upstreamCpuMs += rest1.upstream - rest0.upstream
      live.restCpuMs += rest1.upstream - rest0.upstream + rest1.load - rest0.load
    }
    // Let requests that were in flight when autocannon stopped reach the upstream counters.
    await sleep(250)
    live.runs.push(run)
    live.upstream = await upstreamCall(upstreamUrl, 'stats', live.target.id)
  } catch (err) {
    live.failed = true
    live.problems.push(`${(err as Error).message}\n${running.tail()}`)
  }
}

/** Turns a finished row into its result, applying the validity rules. */
function conclude(live: Live): RowResult {
  const { target } = live
  const base = { id: target.id, label: target.label, baseline: target.baseline ?? false, files: live.running?.files }
  if (live.failed || live.runs.length === 0) return { ...base, status: 'error', problems: live.problems, notes: [] }
  const run = combine(live.runs)
  const upstream = live.upstream
  const problems = [...live.problems]
  const ok2xx = Object.entries(run.statusCodes).reduce((n, [code, count]) => (code.startsWith('2') ? n + count : n), 0)
  if (run.non2xx > 0 || run.errors > 0) {
    problems.push(`${run.non2xx} non-2xx responses ${JSON.stringify(run.statusCodes)} and ${run.errors} socket errors/timeouts`)
  }
  if (upstream.requests < ok2xx) problems.push(`${ok2xx} 2xx responses but only ${upstream.requests} requests reached the upstream`)
  problems.push(...(target.verify?.(run, upstream) ?? []))

  const notes: string[] = []
  if (run.elapsedSec < settings.durationSec * 0.9) notes.push(`measured ${run.elapsedSec.toFixed(1)} s only: its distinct tokens ran out first`)
  notes.push(`upstream saw ${upstream.requests} requests, ${upstream.distinctAuthorization} distinct Authorization values`)
  const perResponse = (ms: number) => (ms > 0 && run.responses > 0 ? (ms * 1000) / run.responses : undefined)
  const cpuUsPerResponse = perResponse(live.cpuMs)
  const mainCpuUsPerResponse = perResponse(live.mainCpuMs)
  const restCpuUsPerResponse = perResponse(live.restCpuMs)
  const upstreamCpuUsPerResponse = perResponse(live.upstreamCpuMs)
  if (cpuUsPerResponse !== undefined) {
    notes.push(
      `server CPU: ${cpuUsPerResponse.toFixed(0)} µs per response (main thread ${mainCpuUsPerResponse?.toFixed(0)} µs); ` +
        `load generator + upstream: ${restCpuUsPerResponse?.toFixed(0)} µs (upstream ${upstreamCpuUsPerResponse?.toFixed(0) ?? '?'} µs)`,
    )
  }
  if (live.syscalls !== undefined && run.responses > 0) {
    const per = (n: number) => (n / run.responses).toFixed(2)
    notes.push(`server system calls per response: ${per(live.syscalls.reads)} reads, ${per(live.syscalls.writes)} writes`)
  }
  for (const [name, file] of Object.entries(base.files ?? {})) {
    if (name === 'config') continue
    let size = 0
    try {
      size = statSync(file).size
    } catch {
      // not written at all: reported as 0
    }
    notes.push(`${name}: ${(size / 1024).toFixed(0)} KiB written`)
  }
  const rounds = live.runs.map((r) => ({ rps: r.rps, p99Ms: r.p99Ms }))
  const equalLoad = concludeEqualLoad(live)
  return { ...base, status: problems.length ? 'invalid' : 'ok', run, upstream, problems, notes, cpuUsPerResponse, mainCpuUsPerResponse, restCpuUsPerResponse, upstreamCpuUsPerResponse, rounds, equalLoad }
}

/**
 * A row's equal-load rounds. They compare only if the row kept up with the schedule: a row that
 * answered fewer requests per second than it was offered was saturated, and its latencies are
 * queueing, not the row's own.
 */
function concludeEqualLoad(live: Live): EqualLoadResult | undefined {
  if (live.equalRuns.length === 0) return undefined
  const run = combine(live.equalRuns)
  const rounds = live.equalRuns.map((r) => ({ rps: r.rps, p99Ms: r.p99Ms }))
  const driverLagMaxMs = Math.max(...live.equalRuns.map((r) => r.driverLagMaxMs))
  let problem: string | undefined
  if (run.errors > 0 || run.non2xx > 0) problem = `${run.non2xx} non-2xx responses and ${run.errors} errors at equal load`
  else if (run.rps < live.equalRate * 0.97) problem = `answered ${Math.round(run.rps)} req/s of the ${live.equalRate} offered: saturated`
  return { rate: live.equalRate, run, rounds, driverLagMaxMs, ...(problem && { problem }) }
}

/**
 * The equal-load rounds, in the paced driver's own process: a 1 s warm-up per row, not counted
 * (the first paced run would otherwise pay for compiling the driver's path, and only the first
 * row would pay), then `equalRounds` interleaved rounds.
 */
async function equalLoadPhase(plan: { rows: Live[]; rate: number }, upstreamUrl: string): Promise<void> {
  log(`- equal load: ${plan.rows.map((l) => l.target.id).join(', ')} offered ${plan.rate} req/s each (${settings.equalSharePct}% of the slowest one's saturated req/s)`)
  const driver = await startPacedDriver()
  const paced = (live: Live, index: number, durationSec: number) =>
    driver.run(live.running!.url, live.target.load('measure', { index, of: settings.rounds }), { rate: plan.rate, durationSec, connections: settings.connections })
  try {
    for (const live of plan.rows) {
      live.equalRate = plan.rate
      await paced(live, 0, 1)
    }
    const rounds = settings.equalRounds
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < plan.rows.length; i++) {
        const live = plan.rows[(i + r) % plan.rows.length]
        try {
          await upstreamCall(upstreamUrl, 'row', `${live.target.id}:equal`)
          const run = await paced(live, r % settings.rounds, settings.equalSec / rounds)
          live.equalRuns.push(run)
          log(`  equal load ${r + 1}/${rounds}  ${live.target.id.padEnd(14)} ${Math.round(run.rps)} req/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms (driver lag at most ${run.driverLagMaxMs.toFixed(1)} ms)`)
        } catch (err) {
          live.failed = true
          live.problems.push(`equal load: ${(err as Error).message}\n${live.running?.tail() ?? ''}`)
        }
      }
    }
  } finally {
    await driver.close()
  }
}

/** The rows an equal-load check compares, and the rate to offer each: a share of the slowest's
 *  saturated req/s, so that every one of them has spare capacity. */
function equalLoadPlan(lives: readonly Live[]): { rows: Live[]; rate: number } | undefined {
  if (settings.equalSec === 0) return undefined
  const ids = new Set<string>()
  for (const l of lives) for (const c of l.target.checks ?? []) if (c.at === 'equal-load') ids.add(l.target.id).add(c.against)
  const rows = lives.filter((l) => ids.has(l.target.id) && !l.failed && l.runs.length > 0)
  if (rows.length < 2) return undefined
  const slowest = Math.min(...rows.map((l) => combine(l.runs).rps))
  const rate = Math.max(1, Math.floor((slowest * settings.equalSharePct) / 100))
  return { rows, rate }
}

async function main(): Promise<number> {
  const t0 = performance.now()
  const startedAt = new Date().toISOString()
  const load0 = loadavg()
  const targets = allTargets(settings.only).filter((t) => settings.only.length === 0 || t.baseline || settings.only.includes(t.id))
  const coldRows = targets.filter((t) => t.usesColdTokens).length
  const needsCold = coldRows > 0
  const coldWanted = settings.coldTokens * coldRows
  log(`portcullis bench: ${targets.length} targets, ${settings.connections} connections, pipelining 1, ${settings.warmupSec} s warm-up + ${settings.durationSec} s measured each (in ${settings.rounds} interleaved rounds)`)
  log(`node ${process.version}, ${cpus().length} cpus, load average ${load0.map((l) => l.toFixed(2)).join(' ')}`)
  if (settings.rate > 0) log(`BENCH_RATE=${settings.rate}: every row is offered ${settings.rate} req/s, so req/s ratios say nothing; compare the server CPU per response`)
  if (settings.publicRoutes) log('BENCH_PUBLIC=1: gateway routes are auth: public (no token verification in the gateway rows)')

  const tmpDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'))
  const issuer = await startIssuer({ audience: 'api://bench', scope: 'bench:read' })
  let upstream: ChildServer | undefined
  const rows: RowResult[] = []
  /** Fewer than asked when BENCH_COLD_SIGN_SEC stopped the signing. */
  let coldTokens: string[] = []
  const lives: Live[] = targets.map((target) => ({ target, runs: [], upstream: noStats, problems: [], failed: false, cpuMs: 0, mainCpuMs: 0, restCpuMs: 0, upstreamCpuMs: 0, syscalls: undefined, equalRuns: [], equalRate: 0 }))
  try {
    const warmTokens = await issuer.mint(settings.warmTokens, 'warm')
    if (needsCold) {
      const ts = performance.now()
      coldTokens = await issuer.mint(coldWanted, 'cold', settings.coldSignSec * 1000)
      const sec = (performance.now() - ts) / 1000
      const cut = coldTokens.length < coldWanted ? ` (stopped at BENCH_COLD_SIGN_SEC=${settings.coldSignSec})` : ''
      const rows = coldRows === 1 ? 'the cold row' : `${coldRows} cold rows`
      log(`signed ${coldTokens.length} distinct RS256 tokens for ${rows} in ${sec.toFixed(1)} s (${Math.round(coldTokens.length / sec)}/s)${cut}`)
    }
    upstream = await spawnServer([benchScript('upstream.js')], listeningUrl)
    const ctx: BenchContext = {
      upstreamUrl: upstream.url,
      upstreamConnections: settings.upstreamConnections,
      issuer,
      warmTokens,
      coldTokens: tokenPool(coldTokens),
      publicRoutes: settings.publicRoutes,
      tmpDir,
      profile: settings.profile,
    }
    for (const live of lives) {
      log(`- start and warm up: ${live.target.label}`)
      await prepare(live, ctx, upstream.url)
      if (live.failed) {
        loud([`BENCH MISCONFIGURED: ${live.target.label}`, ...live.problems.flatMap((p) => p.split('\n'))])
        await live.running?.stop()
      }
    }
    // Rows take turns, in rounds, while all their processes stay up (an idle process costs no CPU):
    // load from other work on the machine then spreads over every row instead of hitting one.
    for (let r = 0; r < settings.rounds; r++) {
      const order = lives.map((_, i) => lives[(i + r) % lives.length])
      for (const live of order) {
        if (live.failed) continue
        await round(live, r, upstream)
        const last = live.runs[live.runs.length - 1]
        if (last) log(`  round ${r + 1}/${settings.rounds}  ${live.target.id.padEnd(14)} ${Math.round(last.rps)} req/s, p99 ${last.p99Ms.toFixed(1)} ms`)
      }
    }
    const plan = equalLoadPlan(lives)
    if (plan) await equalLoadPhase(plan, upstream.url)
    for (const live of lives) {
      await live.running?.stop()
      const row = conclude(live)
      rows.push(row)
      if (row.status === 'invalid') loud([`BENCH MISCONFIGURED: ${row.label}`, ...row.problems.flatMap((p) => p.split('\n'))])
    }
  } finally {
    // Also on a crash: no child may outlive the bench.
    await Promise.all(lives.map((l) => l.running?.stop()))
    await upstream?.stop()
    await issuer.close()
    if (!settings.keepFiles) rmSync(tmpDir, { recursive: true, force: true })
  }

  const checks = evaluate(targets, rows)
  const load1 = loadavg()
  log()
  log(table(rows))
  const equal = equalLoadTable(rows)
  if (equal) {
    log()
    log(`At equal load (a fixed request rate offered to each; latency from each request's scheduled start):`)
    log(equal)
  }
  log()
  for (const r of rows) for (const n of r.notes) log(`  ${r.id}: ${n}`)
  log()
  log('Targets from the issue (ratios within this run):')
  log(verdicts(checks))
  const bounds = ceilings(rows, checks, cpus().length)
  if (bounds) {
    log()
    log(bounds)
  }
  log()
  log(`load average after: ${load1.map((l) => l.toFixed(2)).join(' ')}; total ${((performance.now() - t0) / 1000).toFixed(0)} s`)

  mkdirSync(join(REPO, '.tmp', 'bench'), { recursive: true })
  const { warmTokens: _w, coldTokens: _c, ...shownSettings } = settings
  writeFileSync(
    RESULTS,
    JSON.stringify(
      {
        startedAt,
        node: process.version,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        loadAverage: { before: load0, after: load1 },
        settings: { ...shownSettings, warmTokenCount: _w, coldTokenCount: _c, coldTokensSigned: coldTokens.length },
        rows: rows.map(({ files: _f, run, equalLoad, ...r }) => ({
          ...r,
          run: run && { ...run, latencies: undefined },
          equalLoad: equalLoad && { ...equalLoad, run: { ...equalLoad.run, latencies: undefined } },
        })),
        checks,
      },
      null,
      2,
    ) + '\n',
  )
  log(`results: ${RESULTS}${settings.keepFiles ? `; configs and logs kept in ${tmpDir}` : ''}`)

  const broken = rows.filter((r) => r.status !== 'ok')
  if (broken.length) {
    loud([`${broken.length} row(s) invalid: ${broken.map((r) => r.id).join(', ')}. The figures above are not to be trusted.`])
    return 1
  }
  if (settings.enforce && checks.some((c) => c.pass === false)) return 1
  return 0
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    loud([`bench crashed: ${err.stack ?? err.message}`])
    process.exit(1)
  },
)
