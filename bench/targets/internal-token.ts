import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import type { Target } from '../target.js'
import { gatewayCli } from './common.js'
import { gatewayTarget } from './gateway.js'

const ID = 'gateway-internal-token'

/**
 * The warm gateway row with the route switched to `upstreamToken: internal`: the caller's token is
 * verified as in the pass-through row, then replaced by an EdDSA internal token for the upstream's
 * audience (minted once per caller token and reused until shortly before it expires). Compared
 * with the pass-through row of the same run, it shows what internal tokens cost per request.
 * The key set is generated with the CLI, as an operator does.
 */
export function internalTokenTarget(): Target {
  const target = gatewayTarget({
    id: ID,
    label: 'internal-token route (warm)',
    tokens: 'warm',
    checks: [{ label: 'internal-token route >= 0.9x pass-through gateway (req/s)', metric: 'rps', op: '>=', factor: 0.9, against: 'gateway-warm' }],
    configure(config, ctx) {
      // BENCH_PUBLIC: no caller to speak for, so no internal token; the row then equals pass-through.
      if (ctx.publicRoutes) return config
      execFileSync(process.execPath, [gatewayCli(), 'keys', 'generate', '--force', '--out', join(ctx.tmpDir, ID, 'signing-keys.json')], { stdio: 'ignore' })
      const upstreams = (config.upstreams as Array<Record<string, unknown>>).map((u) => ({ ...u, audience: 'bench-service' }))
      const routes = (config.routes as Array<Record<string, unknown>>).map((r) => ({ ...r, upstreamToken: 'internal' }))
      return {
        ...config,
        upstreams,
        routes,
        // The config file sits next to the key set in the row's folder.
        internalTokens: { issuer: 'https://gateway.bench', signingKeys: '${file:signing-keys.json}' },
      }
    },
  })
  return {
    ...target,
    verify(run, upstream) {
      const problems = target.verify?.(run, upstream) ?? []
      // The upstream counts distinct Authorization values: a handful (one per warm caller token and
      // token lifetime) proves the minted tokens were cached, not signed per request.
      if (upstream.missingAuthorization > 0) problems.push(`${upstream.missingAuthorization} requests reached the upstream without a token`)
      if (upstream.distinctAuthorization > Math.max(100, upstream.requests / 100)) {
        problems.push(`the upstream saw ${upstream.distinctAuthorization} distinct tokens for ${upstream.requests} requests: minted tokens are not cached`)
      }
      return problems
    },
  }
}
