import type { Target } from '../target.js'
import { gatewayTarget } from './gateway.js'

type Config = Record<string, unknown>

const withLogging = (config: Config, change: Config): Config => ({ ...config, logging: { ...(config.logging as Config), ...change } })

/** One feature taken away from the warm gateway's generated config. */
export interface Ablation {
  readonly id: string
  readonly label: string
  readonly configure: (config: Config) => Config
}

export const ABLATIONS: readonly Ablation[] = [
  {
    id: 'ablate-auth',
    label: 'warm gateway without authn/authz (public route)',
    configure: (config) => ({ ...config, routes: (config.routes as Config[]).map(({ scopes: _s, ...r }) => ({ ...r, auth: 'public' })) }),
  },
  {
    id: 'ablate-access-log',
    label: 'warm gateway without the access log',
    configure: (config) => withLogging(config, { access: false }),
  },
  {
    id: 'ablate-brute-force',
    label: 'warm gateway without brute-force protection',
    configure: (config) => ({ ...config, limits: { bruteForce: { enabled: false } } }),
  },
]

/**
 * BENCH_ABLATION=1: the warm gateway with one feature taken away per row, so that comparing a
 * row's CPU per response with gateway-warm's shows what that feature costs. These rows have no
 * targets; a user should not run without the features they take away. One more row takes away an
 * optimization instead: the cold gateway checking each new token's signature where its request is
 * (PORTCULLIS_VERIFY_IN_PLACE=1) rather than in the batch of its event-loop turn
 * (src/pipeline/authn/verify-batch.ts); its check says whether batching still pays.
 */
export function ablationTargets(): Target[] {
  return [
    ...ABLATIONS.map((a) => gatewayTarget({ id: a.id, label: a.label, tokens: 'warm', configure: a.configure })),
    gatewayTarget({
      id: 'ablate-verify-batch',
      label: 'cold gateway, each signature checked in place (no batch)',
      tokens: 'cold',
      env: { PORTCULLIS_VERIFY_IN_PLACE: '1' },
      checks: [{ label: 'cold gateway, checks in place <= cold gateway, batched (req/s)', metric: 'rps', op: '<=', factor: 1, against: 'gateway-cold' }],
    }),
  ]
}
