import { KeyObject } from 'node:crypto'
import type { EventSink } from '../../events/event.js'
import { FetchError, fetchJson } from './fetch-json.js'
import { importJwks, type VerificationKey } from './jwk-import.js'
import { MAX_KIDLESS_CANDIDATES, MAX_RETRY_DELAY_MS, MIN_RETRY_DELAY_MS, REFRESH_AT_FRACTION } from './limits.js'

/** Runs fn after delayMs; returns a function that cancels it. Injected by tests. */
export type Scheduler = (fn: () => void, delayMs: number) => () => void

export interface KeyStoreOptions {
  readonly issuerId: string
  /** The `issuer` the discovery document must state (OIDC Discovery 1.0 §4.3). */
  readonly expectedIssuer: string
  readonly discoveryUrl: string | undefined
  readonly jwksUri: string | undefined
  readonly algorithms: ReadonlySet<string>
  readonly minAgeSec: number
  readonly maxAgeSec: number
  readonly unknownKidRefreshIntervalSec: number
  readonly fetchTimeoutMs: number
  readonly now: () => number
  readonly events: EventSink
  readonly schedule?: Scheduler
  /**
   * Called after a refresh installed a key set from which a key in use before is gone (the IdP
   * retired or revoked it): tokens that key verified must not stay accepted from a cache.
   */
  readonly onKeysRemoved?: () => void
}

export type RefreshSource = 'initial' | 'scheduled' | 'stale' | 'unknown_kid' | 'no_keys'

/** Test and readiness view of a key store. */
export interface KeyStoreState {
  /** JWKs in use (one JWK may serve several algorithms). */
  readonly keys: number
  readonly kids: readonly string[]
  readonly jwksUri: string | undefined
  /** Epoch ms until which the key set counts as fresh (from Cache-Control, clamped). */
  readonly freshUntil: number
  readonly consecutiveFailures: number
}

const MAX_TIMER_MS = 2 ** 31 - 1

const defaultScheduler: Scheduler = (fn, delayMs) => {
  const timer = setTimeout(fn, Math.min(delayMs, MAX_TIMER_MS))
  timer.unref()
  return () => clearTimeout(timer)
}

/** The KeyObject behind a key's node:crypto verify input (bare, or with padding options). */
const keyObjectOf = (k: VerificationKey): KeyObject => (k.nodeKey instanceof KeyObject ? k.nodeKey : (k.nodeKey as { key: KeyObject }).key)

/** The same key for the same algorithm and kid (a refresh imports every key anew, so compare material). */
function sameKey(a: VerificationKey, b: VerificationKey): boolean {
  return a.alg === b.alg && a.kid === b.kid && keyObjectOf(a).equals(keyObjectOf(b))
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * The keys of one issuer: discovery document and JWKS fetched with a timeout, cached for the
 * server's Cache-Control max-age clamped to [jwksCacheMinAgeSec, jwksCacheMaxAgeSec], refreshed in
 * the background before that runs out, and on demand for an unknown `kid` (at most once per
 * unknownKidRefreshIntervalSec, so random kids cannot turn us into a traffic amplifier against
 * the IdP). A failed refresh keeps the last good keys: an IdP outage must not become our outage.
 *
 * Lookups are synchronous and allocation-free; all fetching and key import happen off the
 * request path (or, for an unknown kid, once per interval for every request waiting on it).
 */
export class KeyStore {
  private byAlgKid = new Map<string, VerificationKey[]>()
  private byAlg = new Map<string, VerificationKey[]>()
  private kids = new Set<string>()
  private all: readonly VerificationKey[] = []
  private removals = 0
  private count = 0
  private jwksUri: string | undefined
  private discoveryFreshUntil = 0
  private freshUntil = 0
  private nextAttemptAt = 0
  private failures = 0
  private inflight: Promise<void> | undefined
  private lastOnDemand = Number.NEGATIVE_INFINITY
  private cancelTimer: (() => void) | undefined
  private closed = false
  private readonly abort = new AbortController()
  private readonly schedule: Scheduler

  constructor(private readonly o: KeyStoreOptions) {
    this.jwksUri = o.jwksUri
    this.schedule = o.schedule ?? defaultScheduler
  }

  /**
   * Takes over the keys of the store this one replaces (a config reload), when both fetch the same
   * issuer's keys from the same place for the same algorithms: the first load then refreshes
   * them, and if the provider is down meanwhile, the reload keeps serving with the last good keys
   * as a running store would, instead of swapping in a gateway that has none. Returns whether it
   * took them.
   */
  adopt(prev: KeyStore): boolean {
    const a = this.o
    const b = prev.o
    const same =
      a.expectedIssuer === b.expectedIssuer &&
      a.discoveryUrl === b.discoveryUrl &&
      a.jwksUri === b.jwksUri &&
      a.algorithms.size === b.algorithms.size &&
      [...a.algorithms].every((alg) => b.algorithms.has(alg))
    if (!same || prev.count === 0 || this.count > 0) return false
    this.byAlgKid = prev.byAlgKid
    this.byAlg = prev.byAlg
    this.kids = prev.kids
    this.all = prev.all
    this.count = prev.count
    this.jwksUri = prev.jwksUri
    this.discoveryFreshUntil = prev.discoveryFreshUntil
    this.freshUntil = prev.freshUntil
    return true
  }

  /** First load. Resolves when it settled, whatever the outcome; never rejects. */
  start(): Promise<void> {
    return this.refresh('initial')
  }

  /** True once a JWKS with at least one usable key has been loaded. */
  ready(): boolean {
    return this.count > 0
  }

  hasKid(kid: string): boolean {
    return this.kids.has(kid)
  }

  /**
   * Keys that may verify a token with this kid and alg (several only when the JWKS repeats a kid);
   * without a kid, the keys fitting alg. At most MAX_KIDLESS_CANDIDATES either way. Also starts a
   * background refresh if the set went stale and no timer fired (e.g. the process was suspended).
   */
  keysFor(kid: string | undefined, alg: string): readonly VerificationKey[] {
    if (!this.inflight && !this.closed) {
      const now = this.o.now()
      if (now >= this.freshUntil && now >= this.nextAttemptAt) void this.refresh('stale')
    }
    return (kid === undefined ? this.byAlg.get(alg) : this.byAlgKid.get(alg + ' ' + kid)) ?? []
  }

  /**
   * Refresh on behalf of a request (unknown kid, or no keys yet). Returns the refresh to wait for,
   * or undefined when one already ran within unknownKidRefreshIntervalSec (the request then fails
   * at once). Concurrent callers share one fetch.
   */
  refreshOnDemand(source: 'unknown_kid' | 'no_keys'): Promise<void> | undefined {
    if (this.inflight) return this.inflight
    if (this.closed) return undefined
    const now = this.o.now()
    if (now - this.lastOnDemand < this.o.unknownKidRefreshIntervalSec * 1000) return undefined
    this.lastOnDemand = now
    return this.refresh(source)
  }

  /** Seconds a client should wait before retrying while no keys are available (Retry-After). */
  retryAfterSec(): number {
    if (this.inflight) return 1
    const wait = Math.ceil((this.nextAttemptAt - this.o.now()) / 1000)
    return Math.min(Math.max(wait, 1), MAX_RETRY_DELAY_MS / 1000)
  }

  state(): KeyStoreState {
    return {
      keys: this.count,
      kids: [...this.kids],
      jwksUri: this.jwksUri,
      freshUntil: this.freshUntil,
      consecutiveFailures: this.failures,
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.cancelTimer?.()
    this.cancelTimer = undefined
    this.abort.abort()
    await this.inflight
  }

  /** Runs one refresh, or joins the one in flight. Never rejects. */
  refresh(source: RefreshSource): Promise<void> {
    if (this.inflight) return this.inflight
    if (this.closed) return Promise.resolve()
    this.cancelTimer?.()
    this.cancelTimer = undefined
    const p = this.load(source).finally(() => {
      this.inflight = undefined
    })
    this.inflight = p
    return p
  }

  private clampAge(maxAgeSec: number | undefined): number {
    const { minAgeSec, maxAgeSec: upper } = this.o
    const lower = Math.min(minAgeSec, upper)
    return Math.min(Math.max(maxAgeSec ?? upper, lower), upper)
  }

  private async load(source: RefreshSource): Promise<void> {
    const { o } = this
    try {
      let uri = this.jwksUri
      if (o.discoveryUrl !== undefined && (uri === undefined || o.now() >= this.discoveryFreshUntil)) {
        try {
          uri = await this.loadDiscovery(o.discoveryUrl)
        } catch (err) {
          // A stale discovery document is better than none: keep using the jwks_uri it gave us.
          if (uri === undefined) throw err
        }
      }
      const { body, maxAgeSec } = await fetchJson(uri!, o.fetchTimeoutMs, this.abort.signal)
      let imported: Awaited<ReturnType<typeof importJwks>>
      try {
        imported = await importJwks(body, o.algorithms)
      } catch (err) {
        throw new FetchError('bad_jwks', (err as Error).message)
      }
      // An empty or entirely unusable key set is treated as a failed refresh, not as "the issuer
      // revoked every key": replacing good keys with nothing would turn an IdP bug into an outage.
      if (imported.keys.length === 0) throw new FetchError('no_usable_keys', 'JWKS has no key usable with the allowed algorithms')
      if (this.closed) return
      this.install(imported.keys, imported.usable)
      const ttlSec = this.clampAge(maxAgeSec)
      const now = o.now()
      this.freshUntil = now + ttlSec * 1000
      this.nextAttemptAt = 0
      this.failures = 0
      o.events.emit({
        type: 'keys.refreshed',
        time: new Date(now).toISOString(),
        issuer: o.issuerId,
        source,
        keys: this.count,
        kids: [...this.kids],
        ttlSec,
        skipped: Object.keys(imported.skipped).length ? imported.skipped : undefined,
      })
      this.arm(ttlSec * 1000 * REFRESH_AT_FRACTION)
    } catch (err) {
      if (this.closed) return
      this.failures++
      const delay = Math.min(MIN_RETRY_DELAY_MS * 2 ** (this.failures - 1), MAX_RETRY_DELAY_MS)
      const now = o.now()
      this.nextAttemptAt = now + delay
      o.events.emit({
        type: 'keys.refresh_failed',
        time: new Date(now).toISOString(),
        issuer: o.issuerId,
        source,
        reason: err instanceof FetchError ? err.reason : 'error',
        error: (err as Error).message,
        consecutiveFailures: this.failures,
        // The last good keys stay in use; say so, so an operator knows whether requests still pass.
        keptKeys: this.count,
        retryInSec: delay / 1000,
      })
      this.arm(delay)
    }
  }

  private arm(delayMs: number): void {
    if (this.closed) return
    this.cancelTimer?.()
    this.cancelTimer = this.schedule(() => {
      this.cancelTimer = undefined
      void this.refresh('scheduled')
    }, Math.max(delayMs, 0))
  }

  /** OpenID Connect Discovery 1.0 §4 / RFC 8414 §3. Returns the jwks_uri. */
  private async loadDiscovery(url: string): Promise<string> {
    const { body, maxAgeSec } = await fetchJson(url, this.o.fetchTimeoutMs, this.abort.signal)
    if (!isObject(body)) throw new FetchError('bad_discovery', 'discovery document is not a JSON object')
    // OIDC Discovery 1.0 §4.3: "The issuer value returned MUST be identical to the Issuer URL that
    // was used as the prefix to /.well-known/openid-configuration". Otherwise a document served
    // from one place could make us trust another issuer's keys.
    if (body.issuer !== this.o.expectedIssuer) throw new FetchError('discovery_issuer_mismatch', 'discovery issuer differs from the configured issuer')
    const jwksUri = body.jwks_uri
    if (typeof jwksUri !== 'string' || !/^https?:\/\//i.test(jwksUri) || !URL.canParse(jwksUri)) {
      throw new FetchError('bad_discovery', 'discovery document has no usable jwks_uri')
    }
    // No downgrade: keys named by a document fetched over TLS are fetched over TLS too. A plain
    // http jwks_uri would let anyone on the path replace the keys (what the issuer-insecure-url
    // lint refuses in a configured URL).
    if (/^https:/i.test(url) && !/^https:/i.test(jwksUri)) {
      throw new FetchError('bad_discovery', 'discovery document fetched over https names a jwks_uri without https')
    }
    this.jwksUri = jwksUri
    this.discoveryFreshUntil = this.o.now() + this.clampAge(maxAgeSec) * 1000
    return jwksUri
  }

  /** Swaps in a new key set at once; lookups never see a half-built one. */
  private install(keys: readonly VerificationKey[], usable: number): void {
    const byAlgKid = new Map<string, VerificationKey[]>()
    const byAlg = new Map<string, VerificationKey[]>()
    const kids = new Set<string>()
    for (const key of keys) {
      if (key.kid !== undefined) {
        kids.add(key.kid)
        const k = key.alg + ' ' + key.kid
        // RFC 7517 §4.5 wants distinct kids, but a JWKS may repeat one: a forgery naming it is
        // tried against a bounded number of keys too, as a kid-less one is.
        const list = byAlgKid.get(k)
        if (!list) byAlgKid.set(k, [key])
        else if (list.length < MAX_KIDLESS_CANDIDATES) list.push(key)
      }
      const list = byAlg.get(key.alg)
      if (!list) byAlg.set(key.alg, [key])
      else if (list.length < MAX_KIDLESS_CANDIDATES) list.push(key)
    }
    const removed = this.all.some((old) => !keys.some((k) => sameKey(k, old)))
    this.byAlgKid = byAlgKid
    this.byAlg = byAlg
    this.kids = kids
    this.all = keys
    this.count = usable
    if (removed) {
      this.removals++
      this.o.onKeysRemoved?.()
    }
  }

  /**
   * How many refreshes removed a key so far. An asynchronous verification (jose) that started
   * before a removal must not put its token in the cache after the removal dropped the others.
   */
  get keyRemovals(): number {
    return this.removals
  }
}
