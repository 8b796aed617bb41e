import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer, waitFor200 } from '../child.js'
import { bearer, rotate, tamper, type BenchContext, type Check, type Target } from '../target.js'
import { BENCH_PATH, gatewayCli, gatewayListeningUrl } from './common.js'

export interface GatewayTargetOptions {
  readonly id: string
  readonly label: string
  /** warm: a small token set reused (verification cache hits); cold: a new token per request. */
  readonly tokens: 'warm' | 'cold'
  readonly checks?: readonly Check[]
  /** Extra environment of the gateway process (diagnostic switches of ablation rows). */
  readonly env?: Readonly<Record<string, string>>
  /** Changes the generated config, for variants (e.g. a rate limit that never triggers). */
  readonly configure?: (config: Record<string, unknown>, ctx: BenchContext) => Record<string, unknown>
}

/** Requests of the cold row's warm-up: enough to JIT the cache-miss path, few enough to keep
 *  most of the signed pool for the measured run. */
const COLD_WARMUP_SHARE = 0.1

/**
 * The gateway with its full pipeline, run as a user runs it: the built CLI, a generated config, the
 * access log and security events written to files, a route that requires a token with a scope,
 * and an issuer whose JWKS the bench serves. Each row gets a fresh process (an empty cache).
 */
export function gatewayTarget(options: GatewayTargetOptions): Target {
  let ctx: BenchContext
  let warm: () => string = () => ''
  // Whether the generated config's route verifies tokens (only then can a broken one be refused).
  let verifies = true
  return {
    id: options.id,
    label: options.label,
    usesColdTokens: options.tokens === 'cold',
    checks: options.checks,
    async start(c) {
      ctx = c
      warm = rotate(c.warmTokens.map(bearer))
      const dir = join(c.tmpDir, options.id)
      const { files, config } = writeGatewayConfig(c, dir, options.configure)
      verifies = (config.routes as Array<{ auth?: string }>).some((r) => r.auth !== 'public')
      const profile = c.profile ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []
      const child = await spawnServer([...profile, gatewayCli(), 'start', '--config', files.config], gatewayListeningUrl, options.env ?? {})
      try {
        // Ready means the issuer's keys are loaded: no request of the run waits on the JWKS.
        await waitFor200(child.url + '/readyz')
      } catch (err) {
        await child.stop()
        throw new Error(`${(err as Error).message}\n${child.tail()}`)
      }
      return { ...child, files }
    },
    load(phase, part) {
      if (options.tokens === 'warm') return { path: BENCH_PATH, authorization: warm }
      const pool = ctx.coldTokens
      const take = () => bearer(pool.take())
      if (phase === 'warmup') return { path: BENCH_PATH, authorization: take, amount: Math.floor(pool.size * COLD_WARMUP_SHARE) }
      // The rest of the pool, shared evenly by the remaining rounds.
      return { path: BENCH_PATH, authorization: take, amount: Math.floor(pool.remaining() / (part.of - part.index)) }
    },
    probe: () => warm(),
    refusal: () => (verifies ? bearer(tamper(ctx.warmTokens[0])) : ''),
    verify(_run, upstream) {
      if (options.tokens !== 'cold') return []
      const problems: string[] = []
      if (ctx.coldTokens.overdrawn() > 0) problems.push(`the cold token pool ran dry: ${ctx.coldTokens.overdrawn()} requests repeated a token`)
      // The upstream counts distinct Authorization values (the gateway forwards it by default):
      // one per request proves every request carried a token the gateway had not seen.
      if (upstream.distinctAuthorization !== upstream.requests) {
        problems.push(`the upstream saw ${upstream.requests} requests but only ${upstream.distinctAuthorization} distinct tokens`)
      }
      return problems
    },
  }
}

/**
 * Writes the gateway's config for a row into `dir` (created): the generated config, changed by
 * `configure` when given. Returns the file names and the config as written.
 */
export function writeGatewayConfig(
  c: BenchContext,
  dir: string,
  configure?: (config: Record<string, unknown>, ctx: BenchContext) => Record<string, unknown>,
): { files: { config: string; accessLog: string; eventsLog: string }; config: Record<string, unknown> } {
  mkdirSync(dir, { recursive: true })
  const files = { config: join(dir, 'portcullis.json'), accessLog: join(dir, 'access.log'), eventsLog: join(dir, 'events.log') }
  const base = gatewayConfig(c, files)
  const config = configure ? configure(base, c) : base
  writeFileSync(files.config, JSON.stringify(config, null, 2))
  return { files, config }
}

function gatewayConfig(c: BenchContext, files: { accessLog: string; eventsLog: string }): Record<string, unknown> {
  const route = c.publicRoutes
    ? { id: 'bench', path: '/api/**', methods: ['GET'], upstream: 'bench-upstream', auth: 'public' }
    : { id: 'bench', path: '/api/**', methods: ['GET'], upstream: 'bench-upstream', auth: 'required', scopes: { allOf: [c.issuer.scope] } }
  return {
    version: 1,
    listeners: [{ host: '127.0.0.1', port: 0 }],
    issuers: [
      {
        id: 'bench',
        issuer: c.issuer.issuer,
        jwksUri: c.issuer.jwksUri,
        audiences: [c.issuer.audience],
        algorithms: ['RS256'],
      },
    ],
    upstreams: [{ id: 'bench-upstream', url: c.upstreamUrl, connections: c.upstreamConnections }],
    routes: [route],
    logging: { level: 'info', events: files.eventsLog, access: files.accessLog },
  }
}
