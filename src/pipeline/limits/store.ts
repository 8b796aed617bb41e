import type { FailureParams } from './failure-score.js'
import type { QuotaPeriod } from './quota.js'

/**
 * The one store contract behind the limits stage. A request's checks (every policy of its route,
 * plus the brute-force guards) go to the store in ONE call, which decides them atomically:
 * either every check admits and every one is consumed, or the request is denied and nothing is
 * consumed (a guard may still record the denied attempt against itself, see GuardCheck).
 *
 * Decisions are values: a denial is `{ allowed: false }`, never an exception. Only a failing
 * store (Redis down, timeout) throws or rejects; resilient-store.ts turns that into the
 * configured policy. The memory store answers synchronously so the stage stays synchronous.
 *
 * Times in results are relative (milliseconds from the decision), so a store that takes its time
 * from Redis TIME and one that takes it from the gateway clock give results of the same meaning.
 */
export interface RateCheck {
  readonly kind: 'rate'
  readonly key: string
  readonly intervalUs: number
  readonly burst: number
}

export interface QuotaCheck {
  readonly kind: 'quota'
  readonly key: string
  readonly limit: number
  readonly period: QuotaPeriod
}

export interface ConcurrencyCheck {
  readonly kind: 'concurrency'
  readonly key: string
  readonly limit: number
  readonly leaseMs: number
  /** Unique per request and gateway instance; the slot is released by it. */
  readonly leaseId: string
}

/**
 * Brute-force gate: denies while the key is throttled or locked. With `countBlocked`, a denied
 * attempt counts as one more failure (ignoring Retry-After escalates to a lockout); this write
 * happens even though the request is denied, and it is the only one that does.
 */
export interface GuardCheck {
  readonly kind: 'guard'
  readonly key: string
  readonly params: FailureParams
  readonly countBlocked: boolean
}

export type PolicyCheck = RateCheck | QuotaCheck | ConcurrencyCheck | GuardCheck

export interface CheckResult {
  /** Requests still admitted after this one (0 when denied). Concurrency: free slots. */
  readonly remaining: number
  /** Milliseconds until the counter is fully restored (rate: idle; quota: window end; 0 otherwise). */
  readonly resetMs: number
  /** Milliseconds until this check would admit; 0 when it admits. */
  readonly retryAfterMs: number
  /** Guards: the block is a lockout (not a throttle). */
  readonly locked?: boolean
  /** Guards: this call turned the key into locked (emit one lockout event). */
  readonly newlyLocked?: boolean
}

export interface Decision {
  readonly allowed: boolean
  /** Index of the check that denied with the longest wait, or -1. */
  readonly denied: number
  /** Wait before retrying: the longest wait among denying checks (0 when allowed). */
  readonly retryAfterMs: number
  /** One result per check, in order. Empty when the store was bypassed. */
  readonly results: readonly CheckResult[]
  /** Frees the concurrency slots taken by an admitted request. Never throws. */
  readonly release?: () => void
  /** Set by the resilient store when the store failed and the policy is "deny". */
  readonly unavailable?: boolean
  /** Which store decided: the primary, the local fallback, or none ("allow" while failing). */
  readonly source?: 'primary' | 'fallback' | 'bypass'
}

export interface FailureOutcome {
  /** Failure score after this failure. */
  readonly score: number
  readonly blocked: boolean
  readonly locked: boolean
  readonly newlyLocked: boolean
  readonly retryAfterMs: number
}

export interface LimitStore {
  /** "memory" | "redis" | "resilient" (for stats and logs). */
  readonly kind: string
  /** Decides one request's checks atomically. `nowMs` is ignored by a store that reads Redis TIME. */
  check(checks: readonly PolicyCheck[], nowMs: number): Decision | Promise<Decision>
  /** Records one failed authentication against each key (atomically as a group). */
  recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): readonly FailureOutcome[] | Promise<readonly FailureOutcome[]>
  /** Forgets the failure scores of these keys (a verified success of that account). */
  clearFailures(keys: readonly string[]): void | Promise<void>
  /**
   * A store that holds every failure score itself (the memory store) says until when any of them
   * can still block: the latest expiry it has given a failure key. Past it, no guard can deny,
   * whatever config wrote the scores. Absent for shared stores (other instances write too).
   */
  failuresLiveUntil?(): number
  /** Resolves once a remote store is connected, or its connect timeout passed (never rejects). */
  ready?(): Promise<void>
  close(): Promise<void>
}

/** Retry-After hint for a full concurrency cap: a slot frees when some request ends, time unknown. */
export const CONCURRENCY_RETRY_MS = 1000

export const ALLOWED_EMPTY: Decision = Object.freeze({ allowed: true, denied: -1, retryAfterMs: 0, results: Object.freeze([]) as readonly CheckResult[] })

/** True when a value returned by a store call is a promise (the Redis-backed stores). */
export function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function'
}
