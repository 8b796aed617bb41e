import { blockStatus, failureTtlMs, penalize, type FailureParams, type FailureState } from './failure-score.js'
import { gcra, usToMsCeil } from './gcra.js'
import { quota } from './quota.js'
import { Slot, SlotTable, type SlotTableStats } from './slot-table.js'
import { CONCURRENCY_RETRY_MS, type CheckResult, type Decision, type FailureOutcome, type LimitStore, type PolicyCheck } from './store.js'

/**
 * The in-process store (the default, and the fallback of the Redis store). Synchronous, so a
 * request through it never leaves the current tick; atomic because nothing else runs meanwhile.
 * Bounded by maxKeys (see slot-table.ts). Keys must be distinct across check kinds (the stage
 * prefixes them by kind and policy).
 */
export interface MemoryStore extends LimitStore {
  readonly kind: 'memory'
  check(checks: readonly PolicyCheck[], nowMs: number): Decision
  recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): readonly FailureOutcome[]
  clearFailures(keys: readonly string[]): void
  stats(): SlotTableStats
}

/**
 * What phase 1 decided for one check and phase 2 must write. One class for every kind: with an
 * object literal of its own shape per kind, V8 ended up defining the quota one's fields through its
 * runtime, 1.8 µs per request in CPU profiles of the limits row.
 */
class Pending {
  constructor(
    readonly kind: 'rate' | 'quota' | 'concurrency' | 'guard',
    /** When the slot may go (ms). */
    readonly exp: number,
    /** rate: the new TAT (µs); quota: the window's start (ms). */
    readonly a: number,
    /** quota: the count in the window. */
    readonly b: number,
    /** guard: the failure score to write. */
    readonly state: FailureState | undefined,
  ) {}
}

const NOT_BLOCKED: CheckResult = Object.freeze({ remaining: 0, resetMs: 0, retryAfterMs: 0 })

/** A guard key's slot read as a failure score (a = TAT in µs, b = blocked-until ms). */
function failureState(slot: Slot | undefined): FailureState | undefined {
  return slot && { tatUs: slot.a, untilMs: slot.b, locked: slot.locked }
}

export function createMemoryStore(options: { readonly maxKeys: number }): MemoryStore {
  const table = new SlotTable(options.maxKeys)

  function check(checks: readonly PolicyCheck[], nowMs: number): Decision {
    const nowUs = nowMs * 1000
    const n = checks.length
    const results: CheckResult[] = new Array(n)
    const pending: Array<Pending | undefined> = new Array(n)
    let denied = -1
    let retryAfterMs = 0
    // Sweep a little on every decision too, so idle keys go even while every request is denied.
    table.sweep(nowMs, 1)

    // Phase 1: evaluate every check against the current state, writing nothing.
    for (let i = 0; i < n; i++) {
      const c = checks[i]
      let r: CheckResult
      switch (c.kind) {
        case 'rate': {
          const slot = table.get(c.key, nowMs)
          const g = gcra(slot?.a, nowUs, c)
          r = { remaining: g.remaining, resetMs: usToMsCeil(g.resetUs), retryAfterMs: usToMsCeil(g.retryAfterUs) }
          pending[i] = g.allowed ? new Pending('rate', Math.ceil(g.tatUs / 1000), g.tatUs, 0, undefined) : undefined
          break
        }
        case 'quota': {
          const slot = table.get(c.key, nowMs)
          const q = quota(slot && { windowStartMs: slot.a, count: slot.b }, nowMs, c.limit, c.period)
          r = { remaining: q.remaining, resetMs: q.resetMs, retryAfterMs: q.retryAfterMs }
          pending[i] = q.allowed ? new Pending('quota', q.window.endMs, q.window.startMs, q.count, undefined) : undefined
          break
        }
        case 'concurrency': {
          const slot = table.get(c.key, nowMs)
          let inUse = 0
          if (slot?.leases) {
            for (const [id, exp] of slot.leases) if (exp <= nowMs) slot.leases.delete(id)
            inUse = slot.leases.size
          }
          const ok = inUse < c.limit
          r = ok ? { remaining: c.limit - inUse - 1, resetMs: 0, retryAfterMs: 0 } : { remaining: 0, resetMs: 0, retryAfterMs: CONCURRENCY_RETRY_MS }
          pending[i] = ok ? new Pending('concurrency', nowMs + c.leaseMs, 0, 0, undefined) : undefined
          break
        }
        case 'guard': {
          const state = failureState(table.get(c.key, nowMs))
          const status = blockStatus(state, nowMs)
          if (!status.blocked) {
            r = NOT_BLOCKED
            pending[i] = undefined
            break
          }
          let newlyLocked = false
          let locked = status.locked
          let wait = status.retryAfterMs
          pending[i] = undefined
          if (c.countBlocked) {
            const p = penalize(state, nowUs, nowMs, c.params)
            newlyLocked = p.newlyLocked
            locked = p.state.locked
            wait = p.state.untilMs - nowMs
            pending[i] = new Pending('guard', nowMs + failureTtlMs(p.state, nowUs, nowMs), 0, 0, p.state)
          }
          r = { remaining: 0, resetMs: wait, retryAfterMs: wait, locked, newlyLocked }
          break
        }
      }
      results[i] = r
      if (r.retryAfterMs > 0 && (denied === -1 || r.retryAfterMs > retryAfterMs)) {
        denied = i
        retryAfterMs = r.retryAfterMs
      }
    }

    // Phase 2: all admitted → consume everything; denied → only guards record the attempt.
    const allowed = denied === -1
    let leased: number[] | undefined
    for (let i = 0; i < n; i++) {
      const p = pending[i]
      if (p === undefined || (!allowed && p.kind !== 'guard')) continue
      const key = checks[i].key
      switch (p.kind) {
        case 'rate':
          write(key, nowMs, p.exp, (s) => (s.a = p.a))
          break
        case 'quota':
          write(key, nowMs, p.exp, (s) => {
            s.a = p.a
            s.b = p.b
          })
          break
        case 'concurrency': {
          const c = checks[i] as Extract<PolicyCheck, { kind: 'concurrency' }>
          write(key, nowMs, p.exp, (s) => (s.leases ??= new Map()).set(c.leaseId, p.exp))
          ;(leased ??= []).push(i)
          break
        }
        case 'guard':
          writeFailure(key, p.state!, nowMs, p.exp)
          break
      }
    }
    const release = leased && releaser(checks, leased)
    return release ? { allowed, denied, retryAfterMs, results, release } : { allowed, denied, retryAfterMs, results }
  }

  /** Writes into the key's slot (creating it), sets its expiry and marks it most recent. */
  function write(key: string, nowMs: number, exp: number, set: (s: Slot) => void): void {
    const slot = table.get(key, nowMs) ?? new Slot()
    set(slot)
    // Every kind's expiry only moves forward (a TAT, a window end, a lease or a block end).
    if (slot.exp < exp) slot.exp = exp
    table.put(key, slot, nowMs)
  }

  /** The latest expiry given to a failure key (see LimitStore.failuresLiveUntil). */
  let failuresUntilMs = 0

  function writeFailure(key: string, state: FailureState, nowMs: number, exp: number): void {
    if (exp > failuresUntilMs) failuresUntilMs = exp
    write(key, nowMs, exp, (s) => {
      s.a = state.tatUs
      s.b = state.untilMs
      s.locked = state.locked
    })
  }

  function releaser(checks: readonly PolicyCheck[], leased: number[]): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      for (const i of leased) {
        const c = checks[i] as Extract<PolicyCheck, { kind: 'concurrency' }>
        const slot = table.peek(c.key)
        if (!slot?.leases) continue
        slot.leases.delete(c.leaseId)
        if (slot.leases.size === 0) table.delete(c.key)
      }
    }
  }

  function recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): FailureOutcome[] {
    const nowUs = nowMs * 1000
    return keys.map((key) => {
      const p = penalize(failureState(table.get(key, nowMs)), nowUs, nowMs, params)
      writeFailure(key, p.state, nowMs, nowMs + failureTtlMs(p.state, nowUs, nowMs))
      const status = blockStatus(p.state, nowMs)
      return { score: p.score, blocked: status.blocked, locked: status.locked, newlyLocked: p.newlyLocked, retryAfterMs: status.retryAfterMs }
    })
  }

  return {
    kind: 'memory',
    check,
    recordFailures,
    clearFailures(keys) {
      for (const k of keys) table.delete(k)
    },
    failuresLiveUntil: () => failuresUntilMs,
    stats: () => table.stats(),
    async close() {},
  }
}
