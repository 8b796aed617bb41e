import type { LoadedKey } from './key-set.js'

/**
 * Which key signs and which keys are published, at a given time. A rotation is a schedule written
 * into the key set file, so it takes effect at the same instant on every gateway that loaded it:
 *
 * - the current key signs from its activateAt; before that, the newest previous key still signs
 *   (the new key is published ahead, so services that cached the JWKS find it when they first see
 *   its kid);
 * - a previous key is published until its retireAt, then dropped from the JWKS.
 */
export interface KeySchedule {
  readonly keys: readonly LoadedKey[]
  /** The key that signs at `nowMs`, or undefined when none may (see scheduleProblem). */
  signerAt(nowMs: number): LoadedKey | undefined
  /** The keys in the JWKS at `nowMs`. */
  publishedAt(nowMs: number): LoadedKey[]
  /** The next instant after `nowMs` at which publishedAt changes (Infinity when never). */
  nextPublicationChange(nowMs: number): number
  /** The next instant after `nowMs` at which signerAt changes (Infinity when never). */
  nextSignerChange(nowMs: number): number
}

export function createKeySchedule(keys: readonly LoadedKey[]): KeySchedule {
  const current = keys.find((k) => k.state === 'current')!
  // Newest first, so the first previous key still published is the one that signs before activation.
  const previous = keys.filter((k) => k.state === 'previous').sort((a, b) => b.createdAt - a.createdAt)

  return {
    keys,
    signerAt(nowMs) {
      if (nowMs >= current.activateAt) return current
      return previous.find((k) => k.retireAt > nowMs)
    },
    publishedAt: (nowMs) => keys.filter((k) => k.retireAt > nowMs),
    nextPublicationChange(nowMs) {
      let next = Infinity
      for (const k of keys) if (k.retireAt > nowMs && k.retireAt < next) next = k.retireAt
      return next
    },
    nextSignerChange(nowMs) {
      if (nowMs >= current.activateAt) return Infinity
      const signer = previous.find((k) => k.retireAt > nowMs)
      return Math.min(current.activateAt, signer?.retireAt ?? Infinity)
    },
  }
}

/**
 * Why this key set cannot be used at `nowMs`, or undefined. The current key must have the
 * configured algorithm, and some key must be able to sign from now until the current key takes
 * over: a previous key retired before the current one activates would leave a gap.
 */
export function scheduleProblem(schedule: KeySchedule, algorithm: string, nowMs: number): string | undefined {
  const current = schedule.keys.find((k) => k.state === 'current')!
  if (current.alg !== algorithm) return `the current key (kid ${current.kid}) is ${current.alg}, but internalTokens.algorithm is ${algorithm}`
  if (nowMs >= current.activateAt) return undefined
  const bridging = schedule.keys.some((k) => k.state === 'previous' && k.retireAt > nowMs && k.retireAt >= current.activateAt)
  if (!bridging) {
    return `the current key (kid ${current.kid}) only signs from ${new Date(current.activateAt).toISOString()} and no previous key is published until then`
  }
  return undefined
}
