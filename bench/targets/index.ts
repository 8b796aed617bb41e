import type { Target } from '../target.js'
import { ablationTargets } from './ablation.js'
import { bareProxy } from './bare.js'
import { fastifyStack } from './fastify.js'
import { gatewayTarget } from './gateway.js'
import { internalTokenTarget } from './internal-token.js'
import { limitsTargets } from './limits.js'

// Whether Redis answers decides whether the Redis limiter row runs; asked once, when the bench loads.
const limits = await limitsTargets()

/**
 * The rows, in the order they run. The baseline runs first; each Check compares a row with
 * another row of the same run, so machine noise between runs does not move the verdicts much.
 * New rows (rate limiting, internal tokens, ...) are added here.
 */
export function allTargets(only: readonly string[]): Target[] {
  for (const row of limits.skipped) if (only.length === 0 || only.includes(row.id)) process.stdout.write(`- ${row.id}: SKIPPED, ${row.why}\n`)
  return [
    bareProxy(),
    gatewayTarget({
      id: 'gateway-warm',
      label: 'gateway, warm token cache',
      tokens: 'warm',
      checks: [
        { label: 'warm gateway >= 0.9x bare proxy (req/s)', metric: 'rps', op: '>=', factor: 0.9, against: 'bare' },
        { label: 'gateway p99 <= 1.2x bare proxy p99 (saturated)', metric: 'p99Ms', op: '<=', factor: 1.2, against: 'bare' },
        // The same target where the load is the same: saturated, a row that answers fewer requests
        // per second has proportionally longer queues (docs/benchmarks.md, "Latency at equal load").
        { label: 'gateway p99 <= 1.2x bare proxy p99 (equal load)', metric: 'p99Ms', op: '<=', factor: 1.2, against: 'bare', at: 'equal-load' },
        { label: 'gateway >= 2x Fastify stack (req/s)', metric: 'rps', op: '>=', factor: 2, against: 'fastify' },
      ],
    }),
    gatewayTarget({
      id: 'gateway-cold',
      label: 'gateway, cold cache (new token each request)',
      tokens: 'cold',
      checks: [{ label: 'cold gateway >= 0.7x bare proxy (req/s)', metric: 'rps', op: '>=', factor: 0.7, against: 'bare' }],
    }),
    ...limits.targets,
    internalTokenTarget(),
    fastifyStack(),
    ...(process.env.BENCH_ABLATION === '1' ? ablationTargets() : []),
  ]
}
