import type { Identity } from '../stage.js'

/**
 * Verified tokens by SHA-256 digest, so a busy client pays for signature verification once.
 *
 * - An entry is dropped at the token's `exp` (checked on every read, with the injected clock), and
 *   never trusted past it: the cache is stricter than full verification, which allows clock skew.
 * - Bounded: beyond `maxEntries` the oldest entry goes (a Map iterates in insertion order).
 * - It stores the identity only. Route-dependent rules (which issuers a route accepts) are checked
 *   by the caller on every hit, so a cached identity never widens what a route accepts.
 * - Admission on second sight (admit()): a token is cached the second time it verifies, its first
 *   time only leaves its digest in a bounded "seen" set (the doorkeeper of TinyLFU-style caches).
 *   A token used once (a client that mints one per call, or a flood of fresh tokens) then never
 *   evicts the identities of busy clients nor keeps its claims in memory; a token used many times
 *   pays one extra signature verification in its lifetime.
 */
export class TokenCache {
  private readonly entries = new Map<string, Identity>()
  private readonly seen = new Set<string>()

  constructor(readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1')
  }

  get size(): number {
    return this.entries.size
  }

  get(digest: string, nowMs: number): Identity | undefined {
    const identity = this.entries.get(digest)
    if (identity === undefined) return undefined
    if (nowMs >= identity.expiresAt) {
      this.entries.delete(digest)
      return undefined
    }
    return identity
  }

  set(digest: string, identity: Identity, nowMs: number): void {
    if (nowMs >= identity.expiresAt) return
    this.entries.delete(digest)
    this.entries.set(digest, identity)
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }

  /** Caches the identity if this digest was verified before; otherwise only remembers the digest. */
  admit(digest: string, identity: Identity, nowMs: number): void {
    if (this.seen.delete(digest)) {
      this.set(digest, identity, nowMs)
      return
    }
    this.remember(digest)
  }

  private remember(digest: string): void {
    this.seen.add(digest)
    if (this.seen.size > this.maxEntries) this.seen.delete(this.seen.values().next().value as string)
  }

  /**
   * Drops every entry of this issuer (its key set lost a key); its tokens are verified anew. They
   * count as seen, so the next verification that succeeds caches them again at once.
   */
  dropIssuer(issuerId: string): void {
    for (const [digest, identity] of this.entries) {
      if (identity.issuerId !== issuerId) continue
      this.entries.delete(digest)
      this.remember(digest)
    }
  }

  clear(): void {
    this.entries.clear()
    this.seen.clear()
  }
}
