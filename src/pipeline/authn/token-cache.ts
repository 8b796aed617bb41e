import { entry, OrderedTable, type Entry } from '../../util/ordered-table.js'
import type { Identity } from '../stage.js'

/**
 * Verified tokens by SHA-256 digest, so a busy client pays for signature verification once.
 *
 * - An entry is dropped at the token's `exp` (checked on every read, with the injected clock), and
 *   never trusted past it: the cache is stricter than full verification, which allows clock skew.
 * - Bounded: beyond `maxEntries` the oldest entry goes, in constant time (OrderedTable).
 * - It stores the identity only. Route-dependent rules (which issuers a route accepts) are checked
 *   by the caller on every hit, so a cached identity never widens what a route accepts.
 * - Admission on second sight (admit()): a token is cached the second time it verifies, its first
 *   time only leaves its digest in a bounded "seen" set (the doorkeeper of TinyLFU-style caches).
 *   A token used once (a client that mints one per call, or a flood of fresh tokens) then never
 *   evicts the identities of busy clients nor keeps its claims in memory; a token used many times
 *   pays one extra signature verification in its lifetime.
 */
export class TokenCache {
  private readonly entries = new OrderedTable<string, Entry<string, Identity>>()
  private readonly seen = new OrderedTable<string, Entry<string, undefined>>()

  constructor(readonly maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be at least 1')
  }

  get size(): number {
    return this.entries.size
  }

  get(digest: string, nowMs: number): Identity | undefined {
    const found = this.entries.get(digest)
    if (found === undefined) return undefined
    if (nowMs >= found.value.expiresAt) {
      this.entries.delete(digest)
      return undefined
    }
    return found.value
  }

  set(digest: string, identity: Identity, nowMs: number): void {
    if (nowMs >= identity.expiresAt) return
    this.entries.add(entry(digest, identity))
    if (this.entries.size > this.maxEntries) this.entries.shift()
  }

  /** Caches the identity if this digest was verified before; otherwise only remembers the digest. */
  admit(digest: string, identity: Identity, nowMs: number): void {
    if (this.seen.delete(digest) !== undefined) {
      this.set(digest, identity, nowMs)
      return
    }
    this.remember(digest)
  }

  private remember(digest: string): void {
    this.seen.add(entry(digest, undefined))
    if (this.seen.size > this.maxEntries) this.seen.shift()
  }

  /**
   * Drops every entry of this issuer (its key set lost a key); its tokens are verified anew. They
   * count as seen, so the next verification that succeeds caches them again at once.
   */
  dropIssuer(issuerId: string): void {
    const dropped = [...this.entries].filter((e) => e.value.issuerId === issuerId)
    for (const e of dropped) {
      this.entries.delete(e.key)
      this.remember(e.key)
    }
  }

  clear(): void {
    this.entries.clear()
    this.seen.clear()
  }
}
