import { routeId } from '../config/route-pattern.js'
import type { Config } from '../config/schema.js'
import { GatewayError } from '../errors/gateway-error.js'
import type { Deps, RequestContext } from '../pipeline/stage.js'
import { MintedTokenCache } from './cache.js'
import { buildClaims } from './claims.js'
import { createJwksEndpoint, type JwksEndpoint } from './jwks.js'
import { createKeySchedule, scheduleProblem, type KeySchedule } from './key-schedule.js'
import { parseKeySet } from './key-set.js'
import { createJwsSigner, type JwsSigner } from './sign.js'

export { INTERNAL_TOKEN_TYP } from './sign.js'
export type { JwksEndpoint } from './jwks.js'

/**
 * Internal tokens, built once per loaded config (a reload builds new ones, so a rotated key set is
 * picked up on SIGHUP). forward calls `upstreamAuthorization` on every request; the JWKS is
 * answered by the listeners.
 */
export interface InternalTokens {
  readonly jwks: JwksEndpoint
  /**
   * The Authorization value to send upstream ("Bearer <internal token>") on routes with
   * upstreamToken: internal; undefined on every other route (the caller's token is then handled
   * as before, per identity.forwardAuthorization).
   */
  readonly upstreamAuthorization: (ctx: RequestContext) => string | undefined
}

export class InternalTokensConfigError extends Error {
  constructor(message: string) {
    super(`internalTokens.signingKeys: ${message}`)
    this.name = 'InternalTokensConfigError'
  }
}

/** One upstream audience: its cache of minted tokens. */
interface Audience {
  readonly audience: string
  readonly cache: MintedTokenCache
}

/**
 * Builds the minter from config, or returns undefined when internalTokens is not configured. Keys
 * are parsed and imported here, once; a key set that cannot be used throws (the config is then
 * rejected at start, and a reload keeps the running one).
 *
 * Per request on an internal route: cache lookup by (caller token digest, audience) → on a miss,
 * claims + one node:crypto signature (synchronous: the stage stays synchronous) → cache.
 *
 * @example
 * const tokens = createInternalTokens(config, deps)
 * createForwardStage(config, deps, { upstreamAuthorization: tokens?.upstreamAuthorization })
 */
export function createInternalTokens(config: Config, deps: Deps): InternalTokens | undefined {
  const it = config.internalTokens
  if (it === undefined) return undefined
  const now = deps.now
  let schedule: KeySchedule
  try {
    schedule = createKeySchedule(parseKeySet(it.signingKeys).keys)
  } catch (err) {
    throw new InternalTokensConfigError((err as Error).message)
  }
  const problem = scheduleProblem(schedule, it.algorithm, now())
  if (problem) throw new InternalTokensConfigError(problem)

  const signers = new Map<string, JwsSigner>(schedule.keys.map((k) => [k.kid, createJwsSigner(k)]))
  // The signer changes only at scheduled instants (a published-ahead key activating, a previous
  // key retiring): remember it and look again only then, so a mint costs no search.
  let signer: JwsSigner | undefined
  let signerUntil = -Infinity
  const signerAt = (t: number): JwsSigner => {
    if (t >= signerUntil || signer === undefined) {
      const key = schedule.signerAt(t)
      // scheduleProblem made sure a key signs until the current one takes over, and that one
      // never retires: reaching this is a bug, and failing closed is the only safe answer.
      if (key === undefined) throw new GatewayError('ERR_INTERNAL', { reason: 'no_signing_key' })
      signer = signers.get(key.kid)!
      signerUntil = schedule.nextSignerChange(t)
    }
    return signer
  }

  const audiences = new Map<string, Audience>()
  const upstreamAudience = new Map(config.upstreams.map((u) => [u.id, u.audience] as const))
  const byRoute = new Map<string, Audience>()
  config.routes.forEach((r, i) => {
    if (r.upstreamToken !== 'internal') return
    const audience = upstreamAudience.get(r.upstream)
    // config-checks.ts refuses this at load; a config built in code must not get past it either.
    if (audience === undefined) throw new InternalTokensConfigError(`route ${routeId(r, i)} is internal but upstream ${r.upstream} has no audience`)
    let a = audiences.get(audience)
    if (a === undefined) audiences.set(audience, (a = { audience, cache: new MintedTokenCache(it.cacheMaxEntries) }))
    byRoute.set(routeId(r, i), a)
  })

  const { issuer, ttlSec, requestIdClaim } = it
  const cacheOn = it.cacheMaxEntries > 0 && !requestIdClaim

  function mint(ctx: RequestContext, a: Audience): string {
    const identity = ctx.identity
    // Internal routes require auth (config-checks.ts), so authn has set the identity. Without one
    // there is nobody to speak for: refuse rather than send the request without a token.
    if (identity === undefined) throw new GatewayError('ERR_INTERNAL', { reason: 'internal_token_without_identity' })
    const t = now()
    if (cacheOn) {
      const hit = a.cache.get(identity, t)
      if (hit !== undefined) return hit
    }
    const s = signerAt(t)
    const claims = buildClaims({
      issuer,
      audience: a.audience,
      identity,
      ttlSec,
      nowMs: t,
      keyRetireAt: s.retireAt,
      requestId: requestIdClaim ? ctx.id : undefined,
    })
    const authorization = `Bearer ${s.sign(claims.json)}`
    if (cacheOn) a.cache.set(identity, authorization, claims.issuedAt, claims.expiresAt, t)
    return authorization
  }

  return {
    jwks: createJwksEndpoint({ path: it.jwksPath, maxAgeSec: it.jwksMaxAgeSec, realm: config.server.realm, schedule, now }),
    upstreamAuthorization(ctx) {
      const route = ctx.route
      const a = route === undefined ? undefined : byRoute.get(route.id)
      return a === undefined ? undefined : mint(ctx, a)
    },
  }
}
