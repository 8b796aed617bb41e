/**
 * GCRA, the generic cell rate algorithm (ITU-T I.371, the "virtual scheduling" form), for rates
 * with a burst. The whole state of a key is one number, the theoretical arrival time (TAT): the
 * time at which the key would be back to an idle, full bucket if nothing else arrived.
 *
 *   interval I = period / limit          (one request "costs" I of time)
 *   capacity   = burst × I               (how far ahead of now TAT may run)
 *   a request at `now` conforms iff  max(TAT, now) + I − now ≤ capacity;  then TAT ← max(TAT, now) + I
 *
 * Guarantees (proved in docs/limits.md):
 * - From an idle key, N simultaneous requests admit exactly min(N, burst).
 * - Over ANY interval of length W (not only aligned windows) at most burst + ⌊W / I⌋ requests are
 *   admitted. There is no window boundary, so no double burst at one.
 * - A denied request changes nothing.
 *
 * Times are integer microseconds so that every comparison is exact: with a fractional interval
 * (1000 ms / 3) in floating point, burst × I and I + I + I can differ in the last bit and admit
 * one request too few or too many. Microseconds since 1970 stay below 2^53 until year 2255.
 */
export interface GcraParams {
  /** Emission interval in whole microseconds (≥ 1). */
  readonly intervalUs: number
  /** Bucket size: requests admitted at one instant by an idle key (≥ 1). */
  readonly burst: number
}

export interface GcraResult {
  readonly allowed: boolean
  /** TAT to store when allowed (unchanged state when denied). */
  readonly tatUs: number
  /** Requests that would still be admitted right now, after this one. */
  readonly remaining: number
  /** Microseconds until the key is idle again (bucket full). */
  readonly resetUs: number
  /** Microseconds until this request would conform; 0 when allowed. */
  readonly retryAfterUs: number
}

/** Interval of a rate in whole microseconds, rounded to nearest (and at least 1). */
export function intervalUs(limit: number, periodSec: number): number {
  return Math.max(1, Math.round((periodSec * 1_000_000) / limit))
}

/** Evaluates one request. `storedTatUs` is undefined (or in the past) for an idle key. Pure. */
export function gcra(storedTatUs: number | undefined, nowUs: number, p: GcraParams): GcraResult {
  const tat = storedTatUs !== undefined && storedTatUs > nowUs ? storedTatUs : nowUs
  const newTat = tat + p.intervalUs
  // Earliest time at which this request fits in the bucket.
  const allowAt = newTat - p.burst * p.intervalUs
  if (nowUs < allowAt) {
    return { allowed: false, tatUs: tat, remaining: 0, resetUs: tat - nowUs, retryAfterUs: allowAt - nowUs }
  }
  return {
    allowed: true,
    tatUs: newTat,
    remaining: Math.floor((nowUs - allowAt) / p.intervalUs),
    resetUs: newTat - nowUs,
    retryAfterUs: 0,
  }
}

/** Microseconds → whole milliseconds, rounded up: a client told to wait must not come back early. */
export function usToMsCeil(us: number): number {
  return Math.ceil(us / 1000)
}
