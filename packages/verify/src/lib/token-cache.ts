import type { Identity } from '../types.js'

/**
 * Verified tokens by SHA-256 digest, so a busy client pays for signature verification once.
 *
 * - An entry is dropped at `expiresAt` (the token's `exp`, or earlier when maxTokenAgeSec ends it
 *   sooner), checked on every read with the injected clock, and never trusted past it: the cache
 *   is stricter than full verification, which allows clock skew.
 * - Bounded: an entry goes at the latest when `maxEntries` newer tokens have been cached, in
 *   constant time. (Not through a Map's insertion order, `keys().next()`: V8 keeps deleted
 *   entries as holes that every new iterator steps over, so that costs time proportional to the
 *   table's capacity, about 11 µs per eviction at 10,000 entries.)
 * - Keyed by the digest of the whole token, so a token that differs in any byte misses.
 */
export class TokenCache {
  private readonly entries = new Map<string, { identity: Identity; until: number; slot: number }>()
  /** The digests in the order they were cached, as a ring: slot `next` holds the oldest. */
  private readonly ring: Array<string | undefined>
  private next = 0

  constructor(readonly maxEntries: number) {
    this.ring = new Array<string | undefined>(maxEntries).fill(undefined)
  }

  get(digest: string, nowMs: number): Identity | undefined {
    const entry = this.entries.get(digest)
    if (entry === undefined) return undefined
    if (nowMs >= entry.until) {
      this.entries.delete(digest)
      return undefined
    }
    return entry.identity
  }

  set(digest: string, identity: Identity, until: number, nowMs: number): void {
    if (this.maxEntries === 0 || nowMs >= until) return
    const slot = this.next
    this.next = slot + 1 === this.maxEntries ? 0 : slot + 1
    const evicted = this.ring[slot]
    // A slot whose digest was cached again later (or dropped) no longer owns that entry.
    if (evicted !== undefined && this.entries.get(evicted)?.slot === slot) this.entries.delete(evicted)
    this.ring[slot] = digest
    this.entries.set(digest, { identity, until, slot })
  }
}
