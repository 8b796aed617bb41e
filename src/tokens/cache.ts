import type { Identity } from '../pipeline/stage.js'
import { OrderedTable, type OrderedNode } from '../util/ordered-table.js'

interface Entry extends OrderedNode<string, Entry> {
  /** The whole Authorization value, "Bearer <token>", built once. */
  readonly authorization: string
  readonly reuseUntil: number
  // What the entry was minted for, compared on every hit: the key is a 96-bit digest prefix, and a
  // cached token must never be handed to a caller it was not minted for.
  readonly subject: string | undefined
  readonly callerExpiresAt: number
  readonly issuerId: string
}

/**
 * Minted tokens of one audience, by caller token (its SHA-256 digest prefix from authn), so that
 * a busy caller costs one signature per token lifetime instead of one per request.
 *
 * - An entry is reused only until a margin before its exp (the token must still be valid when the
 *   service checks it): the margin is 5 s, or half the token's lifetime when that is shorter.
 * - Bounded: beyond `maxEntries` the oldest entry goes, in constant time (OrderedTable).
 */
export class MintedTokenCache {
  private readonly entries = new OrderedTable<string, Entry>()

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size
  }

  get(identity: Identity, nowMs: number): string | undefined {
    const entry = this.entries.get(credentialKey(identity))
    if (entry === undefined) return undefined
    if (nowMs >= entry.reuseUntil) {
      this.entries.delete(credentialKey(identity))
      return undefined
    }
    if (entry.subject !== identity.subject || entry.callerExpiresAt !== identity.expiresAt || entry.issuerId !== identity.issuerId) return undefined
    return entry.authorization
  }

  set(identity: Identity, authorization: string, issuedAtMs: number, expiresAtMs: number, nowMs: number): void {
    if (this.maxEntries === 0) return
    const margin = Math.min(5000, (expiresAtMs - issuedAtMs) / 2)
    const reuseUntil = expiresAtMs - margin
    if (nowMs >= reuseUntil) return
    const key = credentialKey(identity)
    this.entries.add({ key, older: undefined, newer: undefined, authorization, reuseUntil, subject: identity.subject, callerExpiresAt: identity.expiresAt, issuerId: identity.issuerId })
    if (this.entries.size > this.maxEntries) this.entries.shift()
  }

  clear(): void {
    this.entries.clear()
  }
}

/** One entry per caller credential: the token's digest, or a certificate identity's thumbprint. */
function credentialKey(identity: Identity): string {
  return identity.tokenDigest ?? `x5t#S256:${identity.certificate}`
}
