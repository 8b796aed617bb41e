import type { Config } from '../config/schema.js'
import { createKeySchedule, scheduleProblem } from './key-schedule.js'
import { KeySetError, parseKeySet } from './key-set.js'

export interface InternalTokensIssue {
  readonly path: string
  readonly message: string
}

/**
 * Cross-field checks of internal tokens, run with the other semantic checks at config load (so
 * `check-config` reports them with file:line):
 *
 * - a route with upstreamToken: internal needs auth: required (there must be a verified caller to
 *   speak for), internalTokens configured, and an upstream with an audience;
 * - the signing key set parses, its current key has the configured algorithm, and some key can
 *   sign now;
 * - the JWKS path differs from the health endpoints.
 *
 * `show` renders a config value for a message unless it came from a secret reference.
 */
export function internalTokensIssues(config: Config, show: (value: unknown, path: string) => string, nowMs: number = Date.now()): InternalTokensIssue[] {
  const issues: InternalTokensIssue[] = []
  const add = (path: string, message: string) => issues.push({ path, message })
  const it = config.internalTokens

  config.routes.forEach((r, i) => {
    if (r.upstreamToken !== 'internal') return
    const p = `/routes/${i}/upstreamToken`
    if (r.auth === 'public') add(p, 'upstreamToken "internal" needs auth: required or certificate: an internal token speaks for a verified caller')
    if (it === undefined) add(p, 'upstreamToken "internal" needs internalTokens (the issuer and signing keys of the tokens the gateway mints)')
    const upstream = config.upstreams.findIndex((u) => u.id === r.upstream)
    if (upstream !== -1 && config.upstreams[upstream].audience === undefined) {
      add(p, `upstreamToken "internal" needs an audience on upstream ${show(r.upstream, `/routes/${i}/upstream`)} (upstreams/${upstream}/audience)`)
    }
  })
  if (it === undefined) return issues

  try {
    const problem = scheduleProblem(createKeySchedule(parseKeySet(it.signingKeys).keys), it.algorithm, nowMs)
    if (problem) add('/internalTokens/signingKeys', problem)
  } catch (err) {
    if (!(err instanceof KeySetError)) throw err
    // The message names fields and kids only, never key material; the value itself is not shown.
    add('/internalTokens/signingKeys', `the signing key set ${err.message}`)
  }

  // A route on the JWKS path is refused with the other paths the gateway answers itself (semantic.ts).
  const s = config.server
  for (const [field, own] of [['healthPath', s.healthPath], ['readyPath', s.readyPath]] as const) {
    if (it.jwksPath === own) add('/internalTokens/jwksPath', `must differ from server.${field}`)
  }
  return issues
}
