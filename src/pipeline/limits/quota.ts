/**
 * Quotas over long windows use calendar windows in UTC (this hour, this day, this month) with a
 * plain counter per window. Why calendar windows rather than sliding ones:
 * - a quota is a contract ("10 000 calls per month") that people read against a calendar and an
 *   invoice; a sliding month has no start a person can name;
 * - the state is one counter and the window start, so it is exact, cheap and easy to inspect;
 * - the known weakness of fixed windows, a double burst at the boundary, is handled by the rate
 *   policy (GCRA) that should sit beside any quota: the quota bounds volume, the rate bounds speed.
 * UTC because a gateway cluster has no single local time zone, and DST would make some days 23 h.
 */
export type QuotaPeriod = 'hour' | 'day' | 'month'

export interface Window {
  readonly startMs: number
  readonly endMs: number
}

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/** The calendar window (UTC) that contains `nowMs`. */
export function windowOf(period: QuotaPeriod, nowMs: number): Window {
  if (period === 'hour') {
    const startMs = Math.floor(nowMs / HOUR_MS) * HOUR_MS
    return { startMs, endMs: startMs + HOUR_MS }
  }
  if (period === 'day') {
    const startMs = Math.floor(nowMs / DAY_MS) * DAY_MS
    return { startMs, endMs: startMs + DAY_MS }
  }
  const d = new Date(nowMs)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  return { startMs: Date.UTC(y, m, 1), endMs: Date.UTC(y, m + 1, 1) }
}

/** Nominal window length in seconds, for RateLimit-Policy `w` (undefined for months: they vary). */
export function nominalWindowSec(period: QuotaPeriod): number | undefined {
  return period === 'hour' ? 3600 : period === 'day' ? 86_400 : undefined
}

export interface QuotaResult {
  readonly allowed: boolean
  /** Count to store for the window when allowed. */
  readonly count: number
  readonly window: Window
  readonly remaining: number
  readonly resetMs: number
  readonly retryAfterMs: number
}

/**
 * Evaluates one request against a quota. `stored` is the saved counter, if any; a counter of an
 * earlier window counts as zero. Pure.
 */
export function quota(
  stored: { readonly windowStartMs: number; readonly count: number } | undefined,
  nowMs: number,
  limit: number,
  period: QuotaPeriod,
): QuotaResult {
  const window = windowOf(period, nowMs)
  const used = stored !== undefined && stored.windowStartMs === window.startMs ? stored.count : 0
  const resetMs = window.endMs - nowMs
  if (used >= limit) return { allowed: false, count: used, window, remaining: 0, resetMs, retryAfterMs: resetMs }
  return { allowed: true, count: used + 1, window, remaining: limit - used - 1, resetMs, retryAfterMs: 0 }
}
