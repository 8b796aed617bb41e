import { intervalUs } from './gcra.js'
/**
 * The state machine of brute-force protection for one key (a client address, or a claimed client
 * id). Pure; the stores keep the state and apply these rules (the Redis script mirrors them line
 * for line, and the shared contract test holds both to the same results).
 *
 * The failure count is a decaying score, kept like a GCRA TAT: each failure adds one, and the
 * score drains by `threshold` per window. So "more than threshold failures per window" is what
 * starts throttling, without any window boundary an attacker could time his attempts against.
 *
 *   score ≤ threshold          nothing happens
 *   score > threshold          throttled: blocked for baseDelay × 2^(score − threshold − 1), capped
 *   score ≥ lockAfter          locked for lockMs; an attempt that keeps the score there (one per
 *                              interval or faster) extends the lock
 *
 * The score is capped at lockAfter, so a flood during a lockout cannot push the key's release
 * years into the future: once the flood stops, the lock ends lockMs later and the score keeps
 * draining.
 */
export interface FailureParams {
  /** Microseconds for one failure to drain: windowSec / threshold. */
  readonly intervalUs: number
  readonly threshold: number
  readonly lockAfter: number
  readonly lockMs: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

export interface FailureState {
  /** Score kept as a time: score = ⌈(tatUs − now) / intervalUs⌉. */
  readonly tatUs: number
  /** Blocked (throttled or locked) until this time; 0 or past = not blocked. */
  readonly untilMs: number
  /** The current block is a lockout (not a throttle). Meaningful only while untilMs > now. */
  readonly locked: boolean
}

export interface PenaltyResult {
  readonly state: FailureState
  readonly score: number
  /** This failure turned the key from not locked into locked: emit one lockout event. */
  readonly newlyLocked: boolean
}

export interface BlockStatus {
  readonly blocked: boolean
  readonly locked: boolean
  readonly retryAfterMs: number
}

export function failureParams(c: {
  readonly threshold: number
  readonly windowSec: number
  readonly throttle: { readonly baseDelayMs: number; readonly maxDelayMs: number }
  readonly lockout: { readonly after: number; readonly ttlSec: number }
}): FailureParams {
  return {
    intervalUs: intervalUs(c.threshold, c.windowSec),
    threshold: c.threshold,
    lockAfter: c.lockout.after,
    lockMs: c.lockout.ttlSec * 1000,
    baseDelayMs: c.throttle.baseDelayMs,
    maxDelayMs: c.throttle.maxDelayMs,
  }
}

/** Current score of a state (0 for none). */
export function scoreOf(state: FailureState | undefined, nowUs: number, p: FailureParams): number {
  if (!state || state.tatUs <= nowUs) return 0
  return Math.ceil((state.tatUs - nowUs) / p.intervalUs)
}

/** Whether the key is blocked right now. */
export function blockStatus(state: FailureState | undefined, nowMs: number): BlockStatus {
  if (!state || state.untilMs <= nowMs) return { blocked: false, locked: false, retryAfterMs: 0 }
  return { blocked: true, locked: state.locked, retryAfterMs: state.untilMs - nowMs }
}

/** Records one failure. `nowUs` and `nowMs` are the same instant (nowMs = ⌊nowUs / 1000⌋). */
export function penalize(state: FailureState | undefined, nowUs: number, nowMs: number, p: FailureParams): PenaltyResult {
  const base = state && state.tatUs > nowUs ? state.tatUs : nowUs
  const tatUs = Math.min(base + p.intervalUs, nowUs + p.lockAfter * p.intervalUs)
  const score = Math.ceil((tatUs - nowUs) / p.intervalUs)
  const active = state !== undefined && state.untilMs > nowMs
  let untilMs = active ? state.untilMs : 0
  let locked = active && state.locked
  let newlyLocked = false
  if (score >= p.lockAfter) {
    newlyLocked = !locked
    locked = true
    untilMs = Math.max(untilMs, nowMs + p.lockMs)
  } else if (score > p.threshold) {
    const delay = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (score - p.threshold - 1))
    untilMs = Math.max(untilMs, nowMs + delay)
  }
  return { state: { tatUs, untilMs, locked }, score, newlyLocked }
}

/** Milliseconds the state must be kept: until both the score has drained and the block is over. */
export function failureTtlMs(state: FailureState, nowUs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((state.tatUs - nowUs) / 1000), state.untilMs - nowMs)
}
