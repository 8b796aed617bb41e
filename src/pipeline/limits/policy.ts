import type { ConcurrencyConfig, LimitKeyPart, LimitsConfig, PolicyConfig, QuotaConfig, RateConfig } from './config.js'
import { intervalUs } from './gcra.js'
import { policyItem } from './headers.js'
import { nominalWindowSec, type QuotaPeriod } from './quota.js'

/**
 * Config → what the stage needs per request, computed once at load: for each policy (and each
 * of its tiers) the list of checks with their parameters, key prefixes and header names, and for
 * each route the policies of each phase. A request then only computes key values.
 */
export type LimitsPhase = 'beforeAuthn' | 'afterAuthn'

interface TemplateBase {
  /** Store key prefix: kind, policy id, tier (if any), and the quota period. */
  readonly prefix: string
  /** Name in RateLimit / RateLimit-Policy. */
  readonly name: string
}
export interface RateTemplate extends TemplateBase {
  readonly kind: 'rate'
  readonly intervalUs: number
  readonly burst: number
}
export interface QuotaTemplate extends TemplateBase {
  readonly kind: 'quota'
  readonly limit: number
  readonly period: QuotaPeriod
}
export interface ConcurrencyTemplate extends TemplateBase {
  readonly kind: 'concurrency'
  readonly limit: number
  readonly leaseMs: number
}
export type CheckTemplate = RateTemplate | QuotaTemplate | ConcurrencyTemplate

export interface Variant {
  readonly templates: readonly CheckTemplate[]
  /** This variant's RateLimit-Policy items, joined. */
  readonly policyField: string
}

export interface CompiledPolicy {
  readonly id: string
  readonly parts: readonly LimitKeyPart[]
  /** Before authn when the key needs no identity (ip, route); after it otherwise. */
  readonly phase: LimitsPhase
  readonly base: Variant
  /** Claim holding the tier, and the variant of each tier. */
  readonly tierClaim: string | undefined
  readonly tiers: ReadonlyMap<string, Variant> | undefined
}

export interface RoutePlan {
  readonly policies: readonly CompiledPolicy[]
  /** RateLimit-Policy for the route when no policy has tiers (else built per request). */
  readonly fixedPolicyField: string | undefined
}

const IDENTITY_PARTS: ReadonlySet<LimitKeyPart> = new Set(['client', 'subject', 'apiKey'])
const EMPTY_PLAN: RoutePlan = Object.freeze({ policies: [], fixedPolicyField: undefined })

function compileVariant(
  id: string,
  tier: string | undefined,
  v: { readonly rate?: RateConfig; readonly quotas?: readonly QuotaConfig[]; readonly concurrency?: ConcurrencyConfig },
): Variant {
  const scope = tier === undefined ? id : `${id}~${tier}`
  const templates: CheckTemplate[] = []
  const items: string[] = []
  if (v.rate) {
    templates.push({ kind: 'rate', prefix: `r:${scope}:`, name: id, intervalUs: intervalUs(v.rate.limit, v.rate.periodSec), burst: v.rate.burst ?? v.rate.limit })
    items.push(policyItem(id, v.rate.limit, v.rate.periodSec))
  }
  for (const q of v.quotas ?? []) {
    const name = `${id}.${q.period}`
    templates.push({ kind: 'quota', prefix: `q:${scope}:${q.period}:`, name, limit: q.limit, period: q.period })
    items.push(policyItem(name, q.limit, nominalWindowSec(q.period)))
  }
  if (v.concurrency) {
    const name = `${id}.concurrency`
    templates.push({ kind: 'concurrency', prefix: `c:${scope}:`, name, limit: v.concurrency.limit, leaseMs: v.concurrency.leaseSec * 1000 })
    items.push(policyItem(name, v.concurrency.limit, undefined, 'concurrent-requests'))
  }
  return { templates, policyField: items.join(', ') }
}

export function compilePolicy(p: PolicyConfig): CompiledPolicy {
  const needsIdentity = p.key.some((part) => IDENTITY_PARTS.has(part)) || p.tiers !== undefined
  let tiers: Map<string, Variant> | undefined
  if (p.tiers) {
    tiers = new Map()
    for (const [name, t] of Object.entries(p.tiers.values)) {
      // A tier replaces the fields it sets and keeps the policy's others.
      tiers.set(name, compileVariant(p.id, name, { rate: t.rate ?? p.rate, quotas: t.quotas ?? p.quotas, concurrency: t.concurrency ?? p.concurrency }))
    }
  }
  return Object.freeze({
    id: p.id,
    parts: p.key,
    phase: needsIdentity ? 'afterAuthn' : 'beforeAuthn',
    base: compileVariant(p.id, undefined, p),
    tierClaim: p.tiers?.claim,
    tiers,
  })
}

/**
 * Per-route plans for one phase. `routePolicies` maps a route id to its own policy ids; every
 * route also gets limits.defaultPolicies (first, without duplicates). Routes absent from the map
 * get the defaults only (planFor's fallback). Unknown ids throw: the config check reports them
 * first, so reaching here with one is a wiring bug.
 */
export function planRoutes(config: LimitsConfig, routePolicies: ReadonlyMap<string, readonly string[]>, phase: LimitsPhase) {
  const compiled = new Map(config.policies.map((p) => [p.id, compilePolicy(p)]))
  const build = (ids: readonly string[]): RoutePlan => {
    const seen = new Set<string>()
    const policies: CompiledPolicy[] = []
    for (const id of ids) {
      if (seen.has(id)) continue
      seen.add(id)
      const p = compiled.get(id)
      if (!p) throw new Error(`unknown limit policy "${id}"`)
      if (p.phase === phase) policies.push(p)
    }
    if (policies.length === 0) return EMPTY_PLAN
    const tiered = policies.some((p) => p.tiers)
    return Object.freeze({ policies, fixedPolicyField: tiered ? undefined : policies.map((p) => p.base.policyField).filter(Boolean).join(', ') })
  }
  const fallback = build(config.defaultPolicies)
  const plans = new Map<string, RoutePlan>()
  for (const [routeId, ids] of routePolicies) plans.set(routeId, build([...config.defaultPolicies, ...ids]))
  return {
    planFor: (routeId: string): RoutePlan => plans.get(routeId) ?? fallback,
  }
}
