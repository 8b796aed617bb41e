import { GatewayError } from '../../errors/gateway-error.js'
import type { Identity, RequestContext } from '../stage.js'
import { createBruteForceTracker, type Attempt, type BruteForceTracker, type GuardSet, type LockoutEvent } from './brute-force.js'
import type { LimitKeyPart, LimitsConfig } from './config.js'
import { createLimitStore } from './create-store.js'
import { limitItem, retryAfterSeconds } from './headers.js'
import { addressKey, boundedMemo, keyValue } from './keys.js'
import { planRoutes, type CheckTemplate, type CompiledPolicy, type LimitsPhase, type Variant } from './policy.js'
import type { StoreEvent } from './resilient-store.js'
import { createEventSampler, type EventSampler } from './sampler.js'
import { isPromise, type Decision, type LimitStore, type PolicyCheck } from './store.js'

export type { LimitsPhase } from './policy.js'
export type { LimitStore, Decision, PolicyCheck } from './store.js'
export type { LockoutEvent, BruteForceTracker } from './brute-force.js'
export type { StoreEvent } from './resilient-store.js'
export type { EventSampler } from './sampler.js'
export type { LimitsConfig } from './config.js'

/**
 * The limits stage. It runs twice in the pipeline, as two instances of one factory:
 *
 *   … sanitize → limits(beforeAuthn) → authn → limits(afterAuthn) → authz → …
 *
 * beforeAuthn checks the policies whose key needs no identity (ip, route) and the brute-force
 * guards of routes that authenticate, so a flood or a locked address is stopped before any
 * token is verified; afterAuthn checks the policies keyed by client, subject or API key.
 * Each instance makes ONE store call per request. A denial throws ERR_LIMITS_EXCEEDED (429,
 * Retry-After, RateLimit fields); a failed store under onStoreError "deny" throws
 * ERR_LIMITS_UNAVAILABLE (503). Requests over a limit never reach the upstream.
 */
export interface LimitsStage {
  readonly name: 'limits'
  readonly phase: LimitsPhase
  onRequest(ctx: RequestContext): void | Promise<void>
}

/**
 * The field only the limits stages use on the RequestContext (rateLimitFields and apiKeyId are
 * declared in stage.ts, since forward and authenticators read or write them).
 */
export interface LimitsContextFields {
  /** Checks the before-authn instance handed to the after-authn one (remote store, known token). */
  deferredLimits?: DeferredChecks
}

interface DeferredChecks {
  /** The policy checks only; the guards travel in `guards`. */
  readonly checks: PolicyCheck[]
  readonly names: string[]
  readonly policyField: string
  readonly guards: GuardSet | undefined
}

type Ctx = RequestContext & LimitsContextFields

export interface LimitsStageDeps {
  readonly now: () => number
  /** See LimitsDeps.knownToken; only given for a remote store. */
  readonly knownToken?: (ctx: RequestContext) => boolean
  /** The tracker for the beforeAuthn instance's guards and the afterAuthn instance's success hook. */
  readonly bruteForce?: BruteForceTracker
}

/** RateLimit-Policy and RateLimit for a response (forward sends them next to the upstream's). */
export function rateLimitResponseHeaders(ctx: RequestContext): Record<string, string> | undefined {
  const f = ctx.rateLimitFields
  if (!f || f.limit === '') return undefined
  return { 'ratelimit-policy': f.policy, ratelimit: f.limit }
}

function pickVariant(p: CompiledPolicy, ctx: Ctx): Variant {
  if (!p.tiers) return p.base
  const tier = ctx.identity?.claims[p.tierClaim!]
  return (typeof tier === 'string' && p.tiers.get(tier)) || p.base
}

function toCheck(t: CheckTemplate, key: string, leaseId: () => string): PolicyCheck {
  switch (t.kind) {
    case 'rate':
      return { kind: 'rate', key, intervalUs: t.intervalUs, burst: t.burst }
    case 'quota':
      return { kind: 'quota', key, limit: t.limit, period: t.period }
    case 'concurrency':
      return { kind: 'concurrency', key, limit: t.limit, leaseMs: t.leaseMs, leaseId: leaseId() }
  }
}

/** An identity's key parts, made on its first request (a cached identity serves many). */
interface IdentityKeys {
  client?: string
  subject?: string
}

export function createLimitsStage(
  config: LimitsConfig,
  routePolicies: ReadonlyMap<string, readonly string[]>,
  deps: LimitsStageDeps,
  store: LimitStore,
  phase: LimitsPhase,
): LimitsStage {
  const { planFor } = planRoutes(config, routePolicies, phase)
  const headersOn = config.headers.rateLimit
  const v6 = config.ipv6PrefixLength
  const bf = deps.bruteForce?.enabled ? deps.bruteForce : undefined
  const guarding = phase === 'beforeAuthn' && bf !== undefined
  const successHook = phase === 'afterAuthn' ? bf : undefined
  // Lease ids: unique per process (random prefix) and request (counter); no per-request randomness.
  const instance = Math.random().toString(36).slice(2, 10)
  let leases = 0
  const leaseId = () => `${instance}:${(leases++).toString(36)}`

  const ipKey = boundedMemo((ip) => `ip=${addressKey(ip, v6)}`)
  const address = (ctx: Ctx) => ipKey(ctx.clientIp)
  // Keys built on every request from recurring values are the same string objects each time
  // (per cached identity, per template and key part), so the store's map lookups hash nothing new.
  const identityKeys = new WeakMap<Identity, IdentityKeys>()
  function keysOf(id: Identity): IdentityKeys {
    let k = identityKeys.get(id)
    if (k === undefined) identityKeys.set(id, (k = {}))
    return k
  }
  const fullKeys = new WeakMap<CheckTemplate, (part: string) => string>()
  function fullKey(t: CheckTemplate, key: string): string {
    let memo = fullKeys.get(t)
    if (memo === undefined) fullKeys.set(t, (memo = boundedMemo((k) => t.prefix + k)))
    return memo(key)
  }
  // A rate or quota check is the same for every request of one key, so it is made once (a new
  // object per request showed as 2 µs of CPU in profiles of the limits rows). Checks are never
  // changed after they are made. A concurrency check carries a lease id of its own each time.
  const checkMemos = new WeakMap<CheckTemplate, (part: string) => PolicyCheck>()
  function checkOf(t: CheckTemplate, key: string): PolicyCheck {
    if (t.kind === 'concurrency') return toCheck(t, fullKey(t, key), leaseId)
    let memo = checkMemos.get(t)
    if (memo === undefined) checkMemos.set(t, (memo = boundedMemo((k) => toCheck(t, t.prefix + k, leaseId))))
    return memo(key)
  }
  function part(p: LimitKeyPart, ctx: Ctx): string {
    const id = ctx.identity
    switch (p) {
      case 'ip':
        return address(ctx)
      case 'route':
        return `route=${ctx.route!.id}`
      case 'client':
        if (id?.clientId) return (keysOf(id).client ??= `client=${keyValue(`${id.issuerId}/${id.clientId}`)}`)
        // A token without client_id or azp (RFC 9068 requires client_id; not every IdP sends it) is
        // counted by its subject: by address, its holder would escape the limit by spreading out.
        return part('subject', ctx)
      case 'subject':
        return id?.subject ? (keysOf(id).subject ??= `sub=${keyValue(`${id.issuerId}/${id.subject}`)}`) : address(ctx)
      case 'apiKey':
        return ctx.apiKeyId ? `key=${keyValue(ctx.apiKeyId)}` : address(ctx)
    }
  }
  function keyOf(parts: readonly LimitKeyPart[], ctx: Ctx): string {
    if (parts.length === 1) return part(parts[0], ctx)
    let k = part(parts[0], ctx)
    for (let i = 1; i < parts.length; i++) k += '|' + part(parts[i], ctx)
    return k
  }

  function deny(ctx: Ctx, d: Decision, names: readonly string[], policyField: string, offset: number): never {
    const retryAfter = retryAfterSeconds(d.retryAfterMs)
    if (d.denied >= offset) {
      const locked = d.results[d.denied]?.locked === true
      throw new GatewayError('ERR_LIMITS_EXCEEDED', {
        reason: locked ? 'brute_force_locked' : 'brute_force_throttled',
        detail: 'Too many failed authentication attempts.',
        headers: { 'retry-after': retryAfter },
      })
    }
    const name = names[d.denied]
    const headers: Record<string, string> = { 'retry-after': retryAfter }
    if (headersOn && policyField) {
      // A denied request consumed nothing: a check that would have admitted it still holds the unit
      // its `remaining` already subtracted; a check that denies has nothing left until its own wait.
      let limit = ''
      for (let i = 0; i < names.length; i++) {
        const r = d.results[i]
        limit += (i ? ', ' : '') + (r.retryAfterMs > 0 ? limitItem(names[i], 0, r.retryAfterMs) : limitItem(names[i], r.remaining + 1, r.resetMs))
      }
      // Policies the earlier phase checked (and consumed) apply to this request too: list them first.
      const earlier = ctx.rateLimitFields
      headers['ratelimit-policy'] = earlier?.policy ? `${earlier.policy}, ${policyField}` : policyField
      headers.ratelimit = earlier?.limit ? `${earlier.limit}, ${limit}` : limit
    }
    throw new GatewayError('ERR_LIMITS_EXCEEDED', { reason: `limit:${name}`, detail: `Limit "${name}" exceeded.`, headers })
  }

  function settle(ctx: Ctx, d: Decision, names: readonly string[], policyField: string, offset: number, guards: GuardSet | undefined): void {
    if (d.unavailable) {
      throw new GatewayError('ERR_LIMITS_UNAVAILABLE', { reason: 'store_unavailable', headers: { 'retry-after': retryAfterSeconds(d.retryAfterMs) } })
    }
    if (guards && d.results.length) bf!.observe(d, offset, ctx.clientIp)
    if (!d.allowed) deny(ctx, d, names, policyField, offset)
    // 'close' fires once the response is done or the connection is gone, whichever way the
    // request ended (later stage denial, upstream error, client abort): the slot always returns.
    // A client gone while the store was answering has closed already: release at once.
    if (d.release) {
      if (ctx.res.closed) d.release()
      else ctx.res.once('close', d.release)
    }
    if (headersOn && names.length && d.results.length) {
      const f = (ctx.rateLimitFields ??= { policy: '', limit: '' })
      if (policyField) f.policy = f.policy ? `${f.policy}, ${policyField}` : policyField
      let limit = f.limit
      for (let i = 0; i < names.length; i++) {
        const item = limitItem(names[i], d.results[i].remaining, d.results[i].resetMs)
        limit = limit ? `${limit}, ${item}` : item
      }
      f.limit = limit
    }
  }

  return {
    name: 'limits',
    phase,
    onRequest(rctx) {
      const ctx = rctx as Ctx
      const route = ctx.route
      if (!route) return
      if (successHook && ctx.identity) successHook.recordSuccess(ctx.identity)
      const plan = planFor(route.id)
      const guards = guarding && route.auth === 'required' ? bf!.guards(ctx) : undefined
      if (plan.policies.length === 0 && guards === undefined && ctx.deferredLimits === undefined) return

      const checks: PolicyCheck[] = []
      const names: string[] = []
      let policyField = plan.fixedPolicyField ?? ''
      const tiered = plan.fixedPolicyField === undefined
      for (const p of plan.policies) {
        const v = pickVariant(p, ctx)
        if (tiered && v.policyField) policyField = policyField ? `${policyField}, ${v.policyField}` : v.policyField
        const key = keyOf(p.parts, ctx)
        for (const t of v.templates) {
          checks.push(checkOf(t, key))
          names.push(t.name)
        }
      }
      if (phase === 'beforeAuthn' && deps.knownToken !== undefined && deps.knownToken(ctx)) {
        // Deferred into the after-authn call (one round trip per request; see LimitsDeps.knownToken).
        ctx.deferredLimits = { checks, names, policyField, guards }
        return
      }
      let settleGuards = guards
      const deferred = phase === 'afterAuthn' ? ctx.deferredLimits : undefined
      if (deferred !== undefined) {
        // Order: the earlier phase's policies, then this phase's, then the brute-force guards.
        ctx.deferredLimits = undefined
        checks.unshift(...deferred.checks)
        names.unshift(...deferred.names)
        policyField = deferred.policyField && policyField ? `${deferred.policyField}, ${policyField}` : deferred.policyField || policyField
        settleGuards = deferred.guards
      }
      // The guards come last: `offset` marks where they start in the decision.
      const offset = checks.length
      if (settleGuards) for (const g of settleGuards.checks) checks.push(g)
      if (checks.length === 0) return

      const r = store.check(checks, deps.now())
      if (isPromise(r)) return r.then((d) => settle(ctx, d, names, policyField, offset, settleGuards))
      settle(ctx, r, names, policyField, offset, settleGuards)
    },
  }
}

export interface Limits {
  readonly beforeAuthn: LimitsStage
  readonly afterAuthn: LimitsStage
  readonly bruteForce: BruteForceTracker
  /** Sampler for limits.exceeded events (key them by client address). */
  readonly sampler: EventSampler
  readonly store: LimitStore
  /** Await in the gateway's start(): resolves when Redis is connected or its connect timeout passed. */
  ready(): Promise<void>
  close(): Promise<void>
}

export interface LimitsDeps {
  readonly now: () => number
  /**
   * True when authn will accept the request's token from its verified-token cache. With a remote
   * (Redis) store the checks before authn are then deferred into the one call after authn: no
   * signature verification is at stake, and the request costs one round trip instead of two.
   */
  readonly knownToken?: (ctx: RequestContext) => boolean
  /** The account a request's credential claims, for brute-force counting (BruteForceDeps). */
  readonly claimedAccount?: (attempt: Attempt) => string | undefined
  /** limits.store_unavailable / limits.store_recovered (Redis store only). */
  readonly onStoreEvent?: (event: StoreEvent) => void
  /** limits.lockout. */
  readonly onLockout?: (event: LockoutEvent) => void
}

/**
 * Everything the composition root needs, built from limits config once: the store, the
 * brute-force tracker, both stage instances and the event sampler.
 *
 * @example
 *   const limits = createLimits(config.limits, routeLimits, { now, onStoreEvent, onLockout })
 *   // order: …, sanitize, limits.beforeAuthn, authn, limits.afterAuthn, authz, forward
 *   // runner, on a denial: void limits.bruteForce.onDenied(ctx, err.code)
 */
export function createLimits(
  config: LimitsConfig,
  routePolicies: ReadonlyMap<string, readonly string[]>,
  deps: LimitsDeps,
  /** A store kept from the previous config (reload with unchanged store settings keeps counters). */
  existingStore?: LimitStore,
): Limits {
  const store = existingStore ?? createLimitStore(config.store, { now: deps.now, onStoreEvent: deps.onStoreEvent })
  const bruteForce = createBruteForceTracker(config.bruteForce, store, {
    now: deps.now,
    addressKey: (ip) => addressKey(ip, config.ipv6PrefixLength),
    claimedAccount: deps.claimedAccount,
    onLockout: deps.onLockout,
  })
  const stageDeps = { now: deps.now, bruteForce, knownToken: store.kind === 'memory' ? undefined : deps.knownToken }
  return {
    beforeAuthn: createLimitsStage(config, routePolicies, stageDeps, store, 'beforeAuthn'),
    afterAuthn: createLimitsStage(config, routePolicies, stageDeps, store, 'afterAuthn'),
    bruteForce,
    sampler: createEventSampler({ perKeyPerSec: config.events.perKeyPerSec }),
    store,
    ready: async () => store.ready?.(),
    close: () => store.close(),
  }
}
