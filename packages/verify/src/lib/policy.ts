/** What a verifier accepts, compiled once from its options (see options.ts). */
export interface TokenPolicy {
  readonly issuer: string
  /**
   * One of these must be in `aud`. A verifier's is never empty (it always checks the audience);
   * empty means any audience, for a gateway issuer configured without one.
   */
  readonly audiences: readonly string[]
  /** The allowlist, without "none" and without HS* unless a secret is configured. */
  readonly algorithms: ReadonlySet<string>
  readonly clockToleranceSec: number
  /** exp - iat (or exp - now) may not exceed this. */
  readonly maxTokenLifetimeSec: number
  /** When set, `iat` is required and may be at most this old. */
  readonly maxTokenAgeSec: number | undefined
  /** Normalized (see normalizeTyp), or undefined when not required. */
  readonly requiredTyp: string | undefined
}

/**
 * RFC 9068 §4 / RFC 2045: media types compare case-insensitively, and the "application/" prefix
 * may be omitted in `typ` (RFC 7515 §4.1.9).
 */
export function normalizeTyp(typ: string): string {
  const lower = typ.toLowerCase()
  return lower.startsWith('application/') ? lower.slice(12) : lower
}
