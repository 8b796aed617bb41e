/**
 * Fixed bounds, the gateway's own. Each caps work an unauthenticated client can cause; the ones a
 * deployment may reasonably change are options of createVerifier.
 */

/** Default cap on a token's length; longer ones are refused before any parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024

/** Default number of verified tokens remembered (0 turns the cache off). */
export const TOKEN_CACHE_MAX_ENTRIES = 1_000

/** A discovery document or JWKS larger than this is a failed fetch. */
export const MAX_DOCUMENT_BYTES = 512 * 1024

/**
 * A token without `kid` is tried against at most this many keys that fit its `alg`, so a kid-less
 * forgery cannot make us run one verification per published key.
 */
export const MAX_KIDLESS_CANDIDATES = 3

/** Nesting depth of RFC 8693 `act` claims accepted; deeper chains are refused. */
export const MAX_ACTOR_DEPTH = 8

/** Retry-After sent with ERR_AUTHN_IDP_UNAVAILABLE. */
export const IDP_RETRY_AFTER_SEC = 5
