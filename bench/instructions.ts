// `npm run bench:instructions`: instructions per request of the bare proxy and the gateway rows,
// counted by valgrind's callgrind, on the main thread (the event loop, which bounds a Node
// server's throughput) and on the other threads (V8's compiler and GC helpers, the libuv pool).
// Unlike req/s and CPU time, an instruction count does not depend on what else the machine is
// doing, so it compares two versions of the code (or a row with another) to within a percent or
// two where the load benchmark (bench/run.ts) moves by 10–20%. What it leaves out: system calls
// (the socket writes every proxy makes) and cache misses; and valgrind hides the CPU's SHA and
// AVX-512 extensions, so OpenSSL hashes and RSA run slower code paths than they would natively
// (the cold row and the token digest look costlier than they are). A guide for the gateway's own
// JavaScript work, not a throughput figure. See docs/benchmarks.md.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { spawnServer, waitFor200, type ChildServer } from './child.js'
import { startIssuer } from './keys.js'
import { bearer, rotate, tokenPool, type BenchContext } from './target.js'
import { ABLATIONS } from './targets/ablation.js'
import { BENCH_PATH, benchScript, gatewayCli, gatewayListeningUrl, listeningUrl } from './targets/common.js'
import { writeGatewayConfig } from './targets/gateway.js'
import { withPolicy } from './targets/limits.js'

const REQUESTS = Number(process.env.BENCH_IR_REQUESTS ?? 2000)
// Under valgrind V8 needs many requests before its optimizing compiler is done with the hot path;
// with fewer, the counted requests still run partly unoptimized code.
const WARMUP = Number(process.env.BENCH_IR_WARMUP ?? 12000)
const CONCURRENCY = 8
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean)
const ROWS = ONLY.length > 0 ? ONLY : ['bare', 'gateway-warm', 'gateway-cold', 'gateway-public']
const START_TIMEOUT_MS = 300_000
const VALGRIND = ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', '--separate-threads=yes']
const log = (s = '') => process.stdout.write(s + '\n')

interface Row {
  readonly id: string
  /** Starts the row's server under `wrapper` (valgrind) and resolves once it is ready. */
  readonly start: (ctx: BenchContext, dir: string, wrapper: readonly string[]) => Promise<ChildServer>
  readonly cold?: boolean
}

async function startGateway(ctx: BenchContext, dir: string, wrapper: readonly string[], configure?: (c: Record<string, unknown>) => Record<string, unknown>): Promise<ChildServer> {
  const { files } = writeGatewayConfig(ctx, dir, configure)
  const child = await spawnServer([gatewayCli(), 'start', '--config', files.config], gatewayListeningUrl, {}, { wrapper, startTimeoutMs: START_TIMEOUT_MS })
  try {
    await waitFor200(child.url + '/readyz', START_TIMEOUT_MS)
  } catch (err) {
    await child.stop()
    throw err
  }
  return child
}

const ALL: Row[] = [
  {
    id: 'bare',
    start: (ctx, _dir, wrapper) =>
      spawnServer(
        [benchScript('bare-proxy.js')],
        listeningUrl,
        { BENCH_UPSTREAM: ctx.upstreamUrl, BENCH_UPSTREAM_CONNECTIONS: String(ctx.upstreamConnections) },
        { wrapper, startTimeoutMs: START_TIMEOUT_MS },
      ),
  },
  { id: 'gateway-warm', start: (ctx, dir, wrapper) => startGateway(ctx, dir, wrapper) },
  { id: 'gateway-cold', cold: true, start: (ctx, dir, wrapper) => startGateway(ctx, dir, wrapper) },
  // The warm gateway with one feature taken away (bench/targets/ablation.ts): gateway-public is
  // ablate-auth under the name it has here; the others run when BENCH_ONLY names them.
  ...ABLATIONS.map((a) => ({
    id: a.id === 'ablate-auth' ? 'gateway-public' : a.id,
    start: (ctx: BenchContext, dir: string, wrapper: readonly string[]) => startGateway(ctx, dir, wrapper, a.configure),
  })),
  // The warm gateway with `npm run bench`'s rate limit and quota per client, in memory; on request.
  { id: 'limits-memory', start: (ctx, dir, wrapper) => startGateway(ctx, dir, wrapper, withPolicy({ type: 'memory' })) },
]

/** Total instructions in a callgrind dump ("summary:" or "totals:" line). */
function irOf(file: string): number {
  const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, 'utf8'))
  if (!m) throw new Error(`no instruction total in ${file}`)
  return Number(m[1])
}

async function send(url: string, count: number, authorization: () => string): Promise<void> {
  const pool = new Pool(url, { connections: CONCURRENCY })
  let next = 0
  const lane = async () => {
    while (next < count) {
      next++
      const r = await pool.request({ path: BENCH_PATH, method: 'GET', headers: { authorization: authorization() } })
      await r.body.dump()
      if (r.statusCode !== 200) throw new Error(`got ${r.statusCode}`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
  await pool.close()
}

interface Count {
  /** Instructions per request on the main thread. */
  readonly main: number
  /** Instructions per request on every other thread. */
  readonly other: number
}

async function measure(row: Row, ctx: BenchContext, tmp: string): Promise<Count> {
  const dir = join(tmp, row.id)
  mkdirSync(dir, { recursive: true })
  const child = await row.start(ctx, dir, [...VALGRIND, `--callgrind-out-file=${join(dir, 'callgrind.%p')}`])
  try {
    const token = row.cold ? () => bearer(ctx.coldTokens.take()) : rotate(ctx.warmTokens.map(bearer))
    await send(child.url, WARMUP, token)
    execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' })
    await send(child.url, REQUESTS, token)
    execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' })
    // With --separate-threads, the dump is one file per thread: callgrind.PID.1-01 is the main thread.
    const dumps = readdirSync(dir).filter((f) => /^callgrind\.\d+\.1-\d+$/.test(f))
    const main = dumps.find((f) => f.endsWith('-01'))
    if (main === undefined) throw new Error(`${row.id}: no callgrind dump of the main thread`)
    let other = 0
    for (const f of dumps) if (f !== main) other += irOf(join(dir, f))
    return { main: irOf(join(dir, main)) / REQUESTS, other: other / REQUESTS }
  } finally {
    await child.stop()
  }
}

async function main(): Promise<void> {
  for (const tool of ['valgrind', 'callgrind_control']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' })
    } catch {
      throw new Error(`${tool} is needed (Debian/Ubuntu: apt install valgrind)`)
    }
  }
  const tmp = mkdtempSync(join(tmpdir(), 'portcullis-ir-'))
  const issuer = await startIssuer({ audience: 'api://bench', scope: 'bench:read' })
  const upstream = await spawnServer([benchScript('upstream.js')], listeningUrl)
  try {
    const ctx: BenchContext = {
      upstreamUrl: upstream.url,
      upstreamConnections: 64,
      issuer,
      warmTokens: [],
      coldTokens: tokenPool([]),
      publicRoutes: false,
      tmpDir: tmp,
      profile: false,
    }
    log(`instructions per request (callgrind, user space only), ${WARMUP} warm-up + ${REQUESTS} counted requests, ${CONCURRENCY} in flight`)
    log(`${'row'.padEnd(16)} ${'main thread'.padStart(12)} ${'x bare'.padStart(7)} ${'other threads'.padStart(14)}`)
    const n = (x: number) => Math.round(x).toLocaleString('en-US')
    let bare: number | undefined
    for (const row of ALL.filter((r) => ROWS.includes(r.id))) {
      // Tokens live 30 minutes and a row under valgrind can take about that long on a slow or busy
      // machine: each row gets tokens of its own, signed just before it starts.
      const tokens = { warmTokens: await issuer.mint(16, 'warm'), coldTokens: tokenPool(row.cold ? await issuer.mint(WARMUP + REQUESTS, 'cold') : []) }
      const c = await measure(row, { ...ctx, ...tokens }, tmp)
      if (row.id === 'bare') bare = c.main
      log(`${row.id.padEnd(16)} ${n(c.main).padStart(12)} ${(bare ? `${(c.main / bare).toFixed(2)}x` : '-').padStart(7)} ${n(c.other).padStart(14)}`)
    }
  } finally {
    await upstream.stop()
    await issuer.close()
    if (process.env.BENCH_KEEP === '1') log(`callgrind dumps kept in ${tmp} (callgrind_annotate FILE)`)
    else rmSync(tmp, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`)
    process.exit(1)
  },
)
