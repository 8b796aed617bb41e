import { catalog } from '../../errors/catalog.js'
import { claimedAccount, verifiedAccount } from './claimed-id.js'
import type { BruteForceConfig } from './config.js'
import { failureParams, type FailureParams } from './failure-score.js'
import { boundedMemo, keyValue } from './keys.js'
import { isPromise, type Decision, type FailureOutcome, type GuardCheck, type LimitStore } from './store.js'
import { entry, OrderedTable, type Entry } from '../../util/ordered-table.js'

/**
 * Brute-force protection: failed authentications are counted per client address and per claimed
 * account (see claimed-id.ts), in the shared store, so a lockout decided on one gateway instance
 * holds on all of them. The rules (threshold, doubling throttle, lockout) are in failure-score.ts.
 *
 * - Before authn, guards() adds the address's guard check to the request's store call: a blocked
 *   address is answered 429 without verifying anything, and, when the request carries a
 *   credential, the attempt counts as one more failure (ignoring Retry-After leads to a lockout).
 * - After a request ends with an authentication failure, onDenied() records it against the
 *   address and the claimed account.
 *
 * An account's score never refuses a request. The account is read from a token that failed, so
 * it is whatever the attacker wrote: refusing by it would let anyone lock every user of an OAuth
 * client out with a few unsigned tokens naming its client_id. A valid token is not a guess, so
 * there is nothing to refuse it for; and a flood of bad tokens can name a new account each time,
 * so refusing by account would not bound the verification work either (the address guard does).
 * The account's score shows a distributed attack on one account: its lockout event.
 *
 * A success never clears the address: an address attacking many accounts could otherwise reset
 * its count with one valid token of its own. It clears only the verified account's count, and
 * only when this instance recorded a failure for it lately (so a success costs no store call in
 * the normal case); elsewhere the count simply drains.
 */
export interface LockoutEvent {
  readonly type: 'limits.lockout'
  readonly target: 'address' | 'account'
  /** Address of the request that caused the lockout. */
  readonly clientIp: string
  /** For target "account": the claimed account ("<iss> <client>"), UNVERIFIED (it came from a failing token). */
  readonly account?: string
  readonly retryAfterMs: number
}

/** What the tracker needs of a request: its address and its Authorization header. */
export interface Attempt {
  readonly clientIp: string
  readonly req: { readonly headers: { readonly authorization?: string | string[] } }
}

export interface BruteForceDeps {
  readonly now: () => number
  /**
   * The account the request's credential claims (see claimed-id.ts), asked only when a failure is
   * recorded. The gateway passes authn's, which names an account only for a configured issuer and
   * reuses the request's decode; default: decode the Authorization header.
   */
  readonly claimedAccount?: (attempt: Attempt) => string | undefined
  /** Address → counted key (IPv6 prefix), the same function the policies use. */
  readonly addressKey: (ip: string) => string
  readonly onLockout?: (event: LockoutEvent) => void
}

export interface GuardSet {
  /** The client address's guard. */
  readonly checks: readonly GuardCheck[]
}

export interface BruteForceTracker {
  readonly enabled: boolean
  readonly params: FailureParams
  /**
   * Guard checks for a request on a route that authenticates; undefined when nothing can be blocked
   * (in-memory store and no failure recorded for longer than a score can last).
   */
  guards(attempt: Attempt): GuardSet | undefined
  /** Emits the lockout event when the address guard (at `offset` in the decision) just locked. */
  observe(decision: Decision, offset: number, clientIp: string): void
  /** Records one failed authentication of this request. Never rejects. */
  recordFailure(attempt: Attempt): Promise<void> | void
  /** Runner hook: records the failure when `code` is one brute force counts. */
  onDenied(attempt: Attempt, code: string): Promise<void> | void
  /** After authn verified an identity: forgets that account's recent failures. */
  recordSuccess(identity: Parameters<typeof verifiedAccount>[0]): void
  stats(): { readonly failures: number; readonly lockouts: number; readonly storeErrors: number }
}

/**
 * Which denials count as a failed authentication. ERR_AUTHN_MISSING presented nothing, so nothing
 * was guessed; ERR_AUTHN_EXPIRED means the signature verified (the token was genuine once) and
 * clients legitimately retry with one before refreshing.
 */
export function countsAsAuthFailure(code: string): boolean {
  if (code === 'ERR_AUTHN_MISSING' || code === 'ERR_AUTHN_EXPIRED') return false
  const entry = (catalog as Record<string, { authFailure?: boolean }>)[code]
  return entry?.authFailure === true
}

const RECENT_ACCOUNTS = 10_000

export function createBruteForceTracker(config: BruteForceConfig, store: LimitStore, deps: BruteForceDeps): BruteForceTracker {
  const params = failureParams(config)
  const perAccount = config.perAccount
  const accountOf = deps.claimedAccount ?? ((a: Attempt) => claimedAccount(a.req.headers.authorization))
  /** Accounts this instance recorded failures for, oldest first (bounded). */
  const recent = new OrderedTable<string, Entry<string, undefined>>()
  let failures = 0
  let lockouts = 0
  let storeErrors = 0

  // A store that holds every failure itself (the memory store) knows until when any score can
  // still block (failuresLiveUntil): before that time nothing can be throttled, so the guard is
  // skipped and a request with a good token costs no store call. That time is the store's own, so
  // it also covers scores written under an earlier config (a reload that kept the store) or by the
  // previous pipeline's requests still in flight. Shared (Redis) stores hear of other instances'
  // failures: there the guard always runs.
  const liveUntil = store.failuresLiveUntil?.bind(store)
  const anythingMayBeBlocked = () => liveUntil === undefined || deps.now() < liveUntil()
  const addressKey = boundedMemo((ip) => `f:ip:${deps.addressKey(ip)}`)
  const accountKey = (account: string) => `f:acct:${keyValue(account)}`

  function lockout(target: 'address' | 'account', clientIp: string, account: string | undefined, retryAfterMs: number): void {
    lockouts++
    try {
      deps.onLockout?.({ type: 'limits.lockout', target, clientIp, ...(target === 'account' ? { account } : {}), retryAfterMs })
    } catch {
      // An event sink must never fail a request.
    }
  }

  function outcomes(results: readonly FailureOutcome[], clientIp: string, account: string | undefined): void {
    results.forEach((r, i) => {
      if (r.newlyLocked) lockout(i === 0 ? 'address' : 'account', clientIp, account, r.retryAfterMs)
    })
  }

  function recordFailure(attempt: Attempt): Promise<void> | void {
    if (!config.enabled) return
    failures++
    const clientIp = attempt.clientIp
    const account = perAccount ? accountOf(attempt) : undefined
    const keys = account === undefined ? [addressKey(clientIp)] : [addressKey(clientIp), accountKey(account)]
    if (account !== undefined) {
      recent.add(entry(account, undefined))
      // The least recently failed account goes, in constant time: the accounts come from tokens
      // that failed, so anyone can send new ones.
      if (recent.size > RECENT_ACCOUNTS) recent.shift()
    }
    let result: readonly FailureOutcome[] | Promise<readonly FailureOutcome[]>
    try {
      result = store.recordFailures(keys, params, deps.now())
    } catch {
      storeErrors++
      return
    }
    if (!isPromise(result)) return outcomes(result, clientIp, account)
    return result.then(
      (r) => outcomes(r, clientIp, account),
      () => {
        storeErrors++
      },
    )
  }

  return {
    enabled: config.enabled,
    params,
    guards(attempt) {
      if (!anythingMayBeBlocked()) return undefined
      const countBlocked = attempt.req.headers.authorization !== undefined
      return { checks: [{ kind: 'guard', key: addressKey(attempt.clientIp), params, countBlocked }] }
    },
    observe(decision, offset, clientIp) {
      const r = decision.results[offset]
      if (r?.newlyLocked) lockout('address', clientIp, undefined, r.retryAfterMs)
    },
    recordFailure,
    onDenied(ctx, code) {
      if (countsAsAuthFailure(code)) return recordFailure(ctx)
    },
    recordSuccess(identity) {
      // Runs for every authenticated request: nothing to clear, nothing to build.
      if (recent.size === 0) return
      const account = verifiedAccount(identity)
      if (account === undefined || recent.delete(account) === undefined) return
      try {
        const r = store.clearFailures([accountKey(account)])
        if (isPromise(r)) r.catch(() => storeErrors++)
      } catch {
        storeErrors++
      }
    },
    stats: () => ({ failures, lockouts, storeErrors }),
  }
}
