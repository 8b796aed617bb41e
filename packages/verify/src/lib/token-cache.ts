import type { Identity } from '../types.js'

/**
 * Verified tokens by SHA-256 digest, so a busy client pays for signature verification once.
 *
 * - An entry is dropped at `expiresAt` (the token's `exp`, or earlier when maxTokenAgeSec ends it
 *   sooner), checked on every read with the injected clock, and never trusted past it: the cache
 *   is stricter than full verification, which allows clock skew.
 * - Bounded: beyond `maxEntries` the oldest entry goes (a Map iterates in insertion order).
 * - Keyed by the digest of the whole token, so a token that differs in any byte misses.
 */
export class TokenCache {
  private readonly entries = new Map<string, { identity: Identity; until: number }>()

  constructor(readonly maxEntries: number) {}

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
    this.entries.delete(digest)
    this.entries.set(digest, { identity, until })
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }
}
