import { PATTERNS } from '../../config/patterns.js'
import { pointerSegment } from '../../config/env-refs.js'
import { Type, type Static } from '@sinclair/typebox'

/**
 * The config fragment of the limits stage. The root schema (config/schema.ts) adds
 * `limits: LimitsSchema` at the top level and `limits: RouteLimitsField` to each route.
 * Every object is closed and carries its defaults, like the rest of the schema, so a config that
 * passed validation is complete. Checks that need several fields at once are in
 * limitsSemanticIssues() at the end of this file.
 */
const closed = { additionalProperties: false } as const
const ID_PATTERN = PATTERNS.id.pattern

export const LimitKeyPart = Type.Union(
  [Type.Literal('client'), Type.Literal('subject'), Type.Literal('apiKey'), Type.Literal('ip'), Type.Literal('route')],
  {
    description:
      'client: issuer + client_id of the verified token; subject: issuer + sub; apiKey: the API key id; ip: the client address (after server.trustedProxies; IPv6 by prefix); route: the route id. Identity parts fall back to the client address on anonymous requests.',
  },
)
export type LimitKeyPart = Static<typeof LimitKeyPart>

export const RateSchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, description: 'Requests admitted per period, sustained.' }),
    periodSec: Type.Integer({ minimum: 1, maximum: 31_536_000, description: 'Length of the period in seconds.' }),
    burst: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Largest number of requests admitted at one instant by an idle key (the bucket size). Default: limit.' }),
    ),
  },
  { ...closed, description: 'A rate enforced with GCRA: limit per periodSec on average, at most burst at once.' },
)
export type RateConfig = Static<typeof RateSchema>

export const QuotaPeriod = Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('month')])
export type QuotaPeriod = Static<typeof QuotaPeriod>

export const QuotaSchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, description: 'Requests admitted per calendar window.' }),
    period: Type.Union(QuotaPeriod.anyOf, { description: 'Calendar window in UTC: the hour, the day or the month.' }),
  },
  closed,
)
export type QuotaConfig = Static<typeof QuotaSchema>

export const ConcurrencySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, description: 'Requests of one key in flight at the same time.' }),
    leaseSec: Type.Integer({
      minimum: 1,
      default: 300,
      description: 'A slot not released after this long (a crashed gateway) is freed anyway. Keep it above the longest request.',
    }),
  },
  closed,
)
export type ConcurrencyConfig = Static<typeof ConcurrencySchema>

/** The limits of a policy or of one tier of it. */
const variantProperties = {
  rate: Type.Optional(RateSchema),
  quotas: Type.Optional(Type.Array(QuotaSchema, { minItems: 1, description: 'Long-window quotas; all apply.' })),
  concurrency: Type.Optional(ConcurrencySchema),
}

export const TierSchema = Type.Object(variantProperties, {
  ...closed,
  description: 'Limits for one tier; a field given here replaces the policy field of the same name.',
})
export type TierConfig = Static<typeof TierSchema>

export const PolicySchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN, maxLength: 64, description: 'Name used by routes, in RateLimit headers and in events.' }),
    description: Type.Optional(Type.String()),
    key: Type.Array(LimitKeyPart, { minItems: 1, uniqueItems: true, description: 'What is counted together; several parts make a combined key.' }),
    ...variantProperties,
    tiers: Type.Optional(
      Type.Object(
        {
          claim: Type.String({ minLength: 1, description: 'Token claim holding the tier name (e.g. "plan").' }),
          // A key pattern becomes patternProperties, which on its own leaves any other key
          // unchecked (its value too): a tier named "free tier" took any fields at all.
          values: Type.Record(Type.String({ pattern: ID_PATTERN }), TierSchema, {
            ...closed,
            description: 'Tier name → its limits. Unknown or absent tiers get the policy limits.',
          }),
        },
        closed,
      ),
    ),
  },
  closed,
)
export type PolicyConfig = Static<typeof PolicySchema>

export const StoreErrorPolicy = Type.Union([Type.Literal('fallback-memory'), Type.Literal('deny'), Type.Literal('allow')], {
  default: 'fallback-memory',
  description:
    'When Redis fails: "fallback-memory" enforces the same policies per gateway instance; "deny" answers 503 ERR_LIMITS_UNAVAILABLE; "allow" lets traffic through unlimited.',
})
export type StoreErrorPolicy = Static<typeof StoreErrorPolicy>

export const RedisStoreSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'redis:// or rediss:// URL. Put credentials in ${env:NAME}.' }),
    keyPrefix: Type.String({ default: 'portcullis:limits:', maxLength: 128, description: 'Prefix of every key the gateway writes.' }),
    commandTimeoutMs: Type.Integer({ minimum: 1, default: 250, description: 'A Redis call slower than this counts as a store failure.' }),
    connectTimeoutMs: Type.Integer({ minimum: 1, default: 2_000 }),
    clock: Type.Union([Type.Literal('redis'), Type.Literal('gateway')], {
      default: 'redis',
      description: '"redis": time comes from Redis TIME inside the script, one clock for all gateways; "gateway": each gateway sends its own clock.',
    }),
    onStoreError: StoreErrorPolicy,
    probeIntervalMs: Type.Integer({ minimum: 1, default: 1_000, description: 'While Redis is failing, try it again at most this often.' }),
    pipelining: Type.Boolean({
      default: false,
      description:
        'true: send the calls of all requests handled in one event-loop turn in one write (fewer system calls, less Redis CPU per request), but a call made while a batch is out waits for it, so a hung Redis can hold a request up to about twice commandTimeoutMs. false: each call goes at once.',
    }),
  },
  closed,
)
export type RedisStoreConfig = Static<typeof RedisStoreSchema>

export const StoreSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('memory'), Type.Literal('redis')], { default: 'memory' }),
    maxKeys: Type.Integer({
      minimum: 1_000,
      default: 1_000_000,
      description: 'Keys held in memory (the memory store, or the local fallback of the Redis store). Idle keys go first; beyond the bound the least recently used go.',
    }),
    redis: Type.Optional(RedisStoreSchema),
  },
  { ...closed, default: {}, description: 'Where counters live. "redis" shares them across gateway instances.' },
)
export type StoreConfig = Static<typeof StoreSchema>

export const BruteForceSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true }),
    threshold: Type.Integer({ minimum: 1, default: 10, description: 'Failed authentications tolerated per windowSec before throttling starts.' }),
    windowSec: Type.Integer({ minimum: 1, default: 300, description: 'The failure count drains by threshold per windowSec.' }),
    throttle: Type.Object(
      {
        baseDelayMs: Type.Integer({ minimum: 1, default: 1_000, description: 'Retry-After of the first throttled failure; it doubles with each further one.' }),
        maxDelayMs: Type.Integer({ minimum: 1, default: 60_000 }),
      },
      { ...closed, default: {} },
    ),
    lockout: Type.Object(
      {
        after: Type.Integer({ minimum: 2, default: 30, description: 'Failure count at which the address or account is locked.' }),
        ttlSec: Type.Integer({ minimum: 1, default: 900, description: 'How long a lockout lasts.' }),
      },
      { ...closed, default: {} },
    ),
    perAccount: Type.Boolean({
      default: true,
      description: 'Also count failures per claimed account (iss and client id, read unverified from the failing token, configured issuers only), to reveal a distributed attack on one client (a lockout event). The score of an account never refuses a request.',
    }),
  },
  { ...closed, default: {}, description: 'Failed authentications per client address and per claimed client id.' },
)
export type BruteForceConfig = Static<typeof BruteForceSchema>

export const LimitsSchema = Type.Object(
  {
    store: StoreSchema,
    headers: Type.Object(
      {
        rateLimit: Type.Boolean({ default: true, description: 'Send RateLimit and RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers).' }),
      },
      { ...closed, default: {} },
    ),
    policies: Type.Array(PolicySchema, { default: [] }),
    defaultPolicies: Type.Array(Type.String({ pattern: ID_PATTERN }), { default: [], uniqueItems: true, description: 'Policy ids applied to every route.' }),
    ipv6PrefixLength: Type.Integer({
      minimum: 32,
      maximum: 128,
      default: 64,
      description: 'IPv6 clients are keyed by this prefix: one host usually holds a whole /64.',
    }),
    bruteForce: BruteForceSchema,
    events: Type.Object(
      {
        perKeyPerSec: Type.Integer({ minimum: 1, default: 1, description: 'limits.exceeded events logged per client and second; the rest are counted.' }),
      },
      { ...closed, default: {} },
    ),
  },
  { ...closed, default: {}, description: 'Rate limits, quotas, concurrency caps and brute-force protection.' },
)
export type LimitsConfig = Static<typeof LimitsSchema>

/** The per-route field: policy ids applied to the route in addition to limits.defaultPolicies. */
export const RouteLimitsField = Type.Optional(
  Type.Array(Type.String({ pattern: ID_PATTERN }), { uniqueItems: true, description: 'Limit policy ids (limits.policies) for this route.' }),
)

export interface LimitsIssue {
  readonly path: string
  readonly message: string
}

/** Largest number a double holds exactly: GCRA times are integer microseconds below it. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER

/**
 * Checks the JSON Schema cannot express: references to policy ids, unique ids, and bounds that
 * involve two fields. `routes` are the route configs (only `limits` is read); paths are JSON
 * pointers into the whole config.
 */
export function limitsSemanticIssues(limits: LimitsConfig, routes: readonly { readonly limits?: readonly string[] }[]): LimitsIssue[] {
  const issues: LimitsIssue[] = []
  const add = (path: string, message: string) => issues.push({ path, message })
  const ids = new Map<string, number>()

  // The schema already says all this; repeated here because a number that is not one (NaN
  // from a field the schema let through) makes a rate admit everything.
  const count = (value: unknown, path: string) => {
    if (!Number.isSafeInteger(value) || (value as number) < 1) add(path, 'must be a whole number of at least 1')
  }
  const checkVariant = (v: { rate?: RateConfig; quotas?: QuotaConfig[]; concurrency?: ConcurrencyConfig }, p: string) => {
    if (v.rate) {
      count(v.rate.limit, `${p}/rate/limit`)
      count(v.rate.periodSec, `${p}/rate/periodSec`)
      if (v.rate.burst !== undefined) count(v.rate.burst, `${p}/rate/burst`)
      // The emission interval is kept in whole microseconds; below 1 µs it would round to 0.
      if ((v.rate.periodSec * 1e6) / v.rate.limit < 1) add(`${p}/rate/limit`, 'more than one request per microsecond cannot be enforced')
      if (v.rate.burst !== undefined && v.rate.burst * v.rate.periodSec * 1e6 > MAX_EXACT * v.rate.limit) add(`${p}/rate/burst`, 'is too large')
    }
    const periods = new Set<string>()
    v.quotas?.forEach((q, j) => {
      count(q.limit, `${p}/quotas/${j}/limit`)
      if (periods.has(q.period)) add(`${p}/quotas/${j}/period`, `two quotas for the same period "${q.period}"`)
      periods.add(q.period)
    })
    if (v.concurrency) {
      count(v.concurrency.limit, `${p}/concurrency/limit`)
      count(v.concurrency.leaseSec, `${p}/concurrency/leaseSec`)
    }
  }

  limits.policies.forEach((pol, i) => {
    const p = `/limits/policies/${i}`
    const prev = ids.get(pol.id)
    if (prev !== undefined) add(`${p}/id`, `duplicate policy id "${pol.id}" (first used at /limits/policies/${prev})`)
    else ids.set(pol.id, i)
    if (!pol.rate && !pol.quotas && !pol.concurrency && !pol.tiers) add(p, 'sets no limit: give rate, quotas, concurrency or tiers')
    checkVariant(pol, p)
    if (pol.tiers) {
      for (const [name, tier] of Object.entries(pol.tiers.values)) checkVariant(tier, `${p}/tiers/values/${pointerSegment(name)}`)
    }
  })

  // Quotas and concurrency caps are named "<policy>.<period>" and "<policy>.concurrency" in the
  // RateLimit fields: a policy id of that shape would make two limits share a name there.
  limits.policies.forEach((pol, i) => {
    const dot = pol.id.lastIndexOf('.')
    const owner = dot > 0 ? pol.id.slice(0, dot) : undefined
    const suffix = pol.id.slice(dot + 1)
    if (owner !== undefined && ids.has(owner) && (suffix === 'concurrency' || QuotaPeriod.anyOf.some((l) => l.const === suffix))) {
      add(`/limits/policies/${i}/id`, `"${pol.id}" is how the RateLimit fields name the ${suffix === 'concurrency' ? 'concurrency cap' : `${suffix} quota`} of policy "${owner}": choose another id`)
    }
  })

  const known = () => (ids.size ? `defined: ${[...ids.keys()].join(', ')}` : 'none are defined')
  limits.defaultPolicies.forEach((id, j) => {
    if (!ids.has(id)) add(`/limits/defaultPolicies/${j}`, `unknown limit policy "${id}" (${known()})`)
  })
  routes.forEach((r, i) => {
    r.limits?.forEach((id, j) => {
      if (!ids.has(id)) add(`/routes/${i}/limits/${j}`, `unknown limit policy "${id}" (${known()})`)
    })
  })

  const bf = limits.bruteForce
  if (bf.lockout.after <= bf.threshold) add('/limits/bruteForce/lockout/after', `must be above threshold (${bf.threshold}): lockout comes after throttling`)
  if (bf.throttle.maxDelayMs < bf.throttle.baseDelayMs) add('/limits/bruteForce/throttle/maxDelayMs', 'must be at least baseDelayMs')

  if (limits.store.type === 'redis' && !limits.store.redis) add('/limits/store', 'type "redis" needs a "redis" object with at least "url"')
  if (limits.store.redis && !/^rediss?:\/\//.test(limits.store.redis.url)) add('/limits/store/redis/url', 'must start with redis:// or rediss://')
  return issues
}
