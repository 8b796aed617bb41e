import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer } from '../child.js'
import { bearer, rotate, type BenchContext, type Target } from '../target.js'
import { BENCH_PATH, benchScript, listeningUrl } from './common.js'

/** node:http + undici Pool, no checks: the baseline of every ratio. It forwards the same
 *  Authorization headers as the gateway rows, so requests are byte-for-byte alike. */
export function bareProxy(): Target {
  let next: () => string = () => ''
  return {
    id: 'bare',
    label: 'bare proxy (node:http + undici)',
    baseline: true,
    async start(ctx: BenchContext) {
      next = rotate(ctx.warmTokens.map(bearer))
      const dir = join(ctx.tmpDir, 'bare')
      mkdirSync(dir, { recursive: true })
      const profile = ctx.profile ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []
      return spawnServer([...profile, benchScript('bare-proxy.js')], listeningUrl, {
        BENCH_UPSTREAM: ctx.upstreamUrl,
        BENCH_UPSTREAM_CONNECTIONS: String(ctx.upstreamConnections),
      })
    },
    load: () => ({ path: BENCH_PATH, authorization: next }),
    probe: () => next(),
  }
}
