import type { StoreErrorPolicy } from './config.js'
import type { FailureParams } from './failure-score.js'
import type { MemoryStore } from './memory-store.js'
import { ALLOWED_EMPTY, isPromise, type Decision, type FailureOutcome, type LimitStore, type PolicyCheck } from './store.js'

/**
 * Wraps the Redis store so that a Redis failure never fails a request, never crashes the gateway
 * and never makes requests wait: the failure is answered by the configured policy.
 *
 *   fallback-memory (default)  the same checks run against a local memory store: limits hold per
 *                              gateway instance (with N instances a key may get up to N× its limit)
 *   deny                       fail closed: 503 ERR_LIMITS_UNAVAILABLE with Retry-After
 *   allow                      fail open: no limits until Redis is back
 *
 * A circuit keeps a dead Redis off the hot path: after a failure, requests go straight to the
 * policy, and one request at a time probes Redis again, at most once per probeIntervalMs, or at
 * once when the client reports it reconnected. The first success closes the circuit: recovery
 * needs no restart. Each transition emits one event (limits.store_unavailable,
 * limits.store_recovered), and counters say how many requests were decided without Redis.
 */
export type StoreEventType = 'limits.store_unavailable' | 'limits.store_recovered'

export interface StoreEvent {
  readonly type: StoreEventType
  readonly onStoreError: StoreErrorPolicy
  /** Short error description (error code or first line of the message), never a URL. */
  readonly error?: string
}

export interface ResilientStats {
  readonly state: 'up' | 'down'
  /** Redis calls that failed (timeouts, connection errors, script errors). */
  readonly storeErrors: number
  /** Requests decided by the failure policy instead of Redis. */
  readonly degradedDecisions: number
  readonly unavailableEvents: number
  readonly recoveredEvents: number
}

export interface ResilientStore extends LimitStore {
  readonly kind: 'resilient'
  stats(): ResilientStats
}

export interface ResilientStoreOptions {
  readonly primary: LimitStore & { onReady?(listener: () => void): void; ready?(): Promise<void> }
  /** Required for onStoreError "fallback-memory". */
  readonly fallback?: MemoryStore
  readonly onStoreError: StoreErrorPolicy
  readonly probeIntervalMs: number
  /** Clock of the circuit (probe spacing). */
  readonly now: () => number
  readonly onEvent?: (event: StoreEvent) => void
}

export function createResilientStore(o: ResilientStoreOptions): ResilientStore {
  const { primary, fallback, onStoreError: policy, probeIntervalMs, now } = o
  if (policy === 'fallback-memory' && !fallback) throw new Error('onStoreError "fallback-memory" needs a fallback memory store')
  let up = true
  let probing = false
  let retryAt = 0
  let reconnected = false
  let storeErrors = 0
  let degradedDecisions = 0
  let unavailableEvents = 0
  let recoveredEvents = 0

  primary.onReady?.(() => {
    if (!up) reconnected = true
  })

  const emit = (event: StoreEvent) => {
    try {
      o.onEvent?.(event)
    } catch {
      // An event sink must not turn a store failure into a request failure.
    }
  }

  /** May this call go to the primary? While down, one probe at a time. */
  function usePrimary(): boolean {
    if (up) return true
    if (probing || (!reconnected && now() < retryAt)) return false
    probing = true
    reconnected = false
    retryAt = now() + probeIntervalMs
    return true
  }

  function succeeded(): void {
    if (up) return
    up = true
    probing = false
    recoveredEvents++
    emit({ type: 'limits.store_recovered', onStoreError: policy })
  }

  function failed(err: unknown): void {
    storeErrors++
    probing = false
    retryAt = now() + probeIntervalMs
    if (!up) return
    up = false
    unavailableEvents++
    emit({ type: 'limits.store_unavailable', onStoreError: policy, error: describe(err) })
  }

  const retryMs = Math.max(1000, probeIntervalMs)
  const UNAVAILABLE: Decision = Object.freeze({ allowed: false, denied: -1, retryAfterMs: retryMs, results: [], unavailable: true, source: 'bypass' as const })
  const BYPASS: Decision = Object.freeze({ ...ALLOWED_EMPTY, source: 'bypass' as const })

  function degraded(checks: readonly PolicyCheck[], nowMs: number): Decision {
    degradedDecisions++
    if (policy === 'deny') return UNAVAILABLE
    if (policy === 'allow') return BYPASS
    return { ...fallback!.check(checks, nowMs), source: 'fallback' }
  }

  function check(checks: readonly PolicyCheck[], nowMs: number): Decision | Promise<Decision> {
    if (!usePrimary()) return degraded(checks, nowMs)
    let result: Decision | Promise<Decision>
    try {
      result = primary.check(checks, nowMs)
    } catch (err) {
      failed(err)
      return degraded(checks, nowMs)
    }
    if (!isPromise(result)) {
      succeeded()
      return result
    }
    return result.then(
      (d) => {
        succeeded()
        return d
      },
      (err: unknown) => {
        failed(err)
        return degraded(checks, nowMs)
      },
    )
  }

  function degradedFailures(keys: readonly string[], params: FailureParams, nowMs: number): readonly FailureOutcome[] {
    // Only the local fallback can remember failures; "deny" and "allow" have nowhere to count.
    return policy === 'fallback-memory' ? fallback!.recordFailures(keys, params, nowMs) : []
  }

  async function recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): Promise<readonly FailureOutcome[]> {
    if (!usePrimary()) return degradedFailures(keys, params, nowMs)
    try {
      const r = await primary.recordFailures(keys, params, nowMs)
      succeeded()
      return r
    } catch (err) {
      failed(err)
      return degradedFailures(keys, params, nowMs)
    }
  }

  return {
    kind: 'resilient',
    check,
    recordFailures,
    async clearFailures(keys) {
      fallback?.clearFailures(keys)
      if (!usePrimary()) return
      try {
        await primary.clearFailures(keys)
        succeeded()
      } catch (err) {
        failed(err)
      }
    },
    stats: () => ({ state: up ? 'up' : 'down', storeErrors, degradedDecisions, unavailableEvents, recoveredEvents }),
    async ready() {
      // A gateway may start without Redis: the failure policy covers it until Redis comes.
      await primary.ready?.().catch(() => {})
    },
    async close() {
      await primary.close()
      await fallback?.close()
    },
  }
}

/** False while a store wrapping Redis is failing (its circuit is open); true for any other store. */
export function storeAnswers(store: LimitStore): boolean {
  return store.kind !== 'resilient' || (store as ResilientStore).stats().state === 'up'
}

function describe(err: unknown): string {
  if (err && typeof err === 'object') {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') return code
    const message = (err as { message?: unknown }).message
    // ioredis messages name host:port at most; strip anything URL-like all the same.
    if (typeof message === 'string') return message.split('\n')[0].replace(/\w+:\/\/\S+/g, '<url>').slice(0, 200)
  }
  return 'unknown error'
}
