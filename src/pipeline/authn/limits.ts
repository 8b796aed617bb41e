/**
 * Fixed bounds of the authn stage. They are constants rather than config because no sane
 * deployment needs them changed, and each one caps work an unauthenticated client can cause.
 */

/** Tokens longer than this are refused before any parsing or hashing beyond the digest. */
export const MAX_TOKEN_BYTES = 8 * 1024

/** Verified tokens kept in memory; the oldest entry is evicted beyond this. */
export const TOKEN_CACHE_MAX_ENTRIES = 10_000

/** A discovery document or JWKS larger than this is a failed fetch. */
export const MAX_DOCUMENT_BYTES = 512 * 1024

/** Keys imported from one JWKS; further keys are ignored. */
export const MAX_JWKS_KEYS = 100

/**
 * A token without `kid` is tried against at most this many of the issuer's keys that fit its
 * `alg`, so a kid-less forgery cannot make us run one verification per published key. The same
 * bound holds for the keys of one `kid` when a JWKS repeats it.
 */
export const MAX_KIDLESS_CANDIDATES = 3

/** Refresh this fraction into the cache lifetime, so fresh keys are in before the old set goes stale. */
export const REFRESH_AT_FRACTION = 0.8

/** Retry delay after a failed refresh doubles from this, up to MAX_RETRY_DELAY_MS. */
export const MIN_RETRY_DELAY_MS = 1_000
export const MAX_RETRY_DELAY_MS = 60_000
