import type { JSONWebKeySet } from 'jose'

/**
 * RFC 8693 §4.1 actor claim: who is acting on behalf of the token's subject. Portcullis internal
 * tokens carry one when the gateway calls a service on behalf of a caller; `act.act` is the
 * previous actor of a delegation chain.
 */
export interface Actor {
  readonly sub?: string
  readonly iss?: string
  readonly client_id?: string
  readonly act?: Actor
  readonly [claim: string]: unknown
}

/** Who a verified token speaks for. Frozen: one object may be shared by cached verifications. */
export interface Identity {
  /** `sub`. */
  readonly subject: string | undefined
  /** `client_id` (RFC 9068 §2.2), else `azp` (OIDC-style providers). */
  readonly clientId: string | undefined
  /**
   * From `scope` (space-delimited, RFC 9068 §2.2.3), else from `scp` (an array, or a
   * space-delimited string). Every scope is an RFC 6749 §3.3 scope-token. Read-only.
   */
  readonly scopes: ReadonlySet<string>
  /** `iss`, exactly as configured. */
  readonly issuer: string
  /** `aud`, always as an array. */
  readonly audience: readonly string[]
  /** `jti`. */
  readonly jti: string | undefined
  /** `exp` in epoch milliseconds. */
  readonly expiresAt: number
  /** RFC 8693 `act` claim, when the token was issued to an actor on behalf of the subject. */
  readonly act: Actor | undefined
  /**
   * The client certificate the token is bound to (RFC 8705 `cnf.x5t#S256`: base64url SHA-256 of
   * the DER certificate), or undefined for a plain bearer token. A bound token is accepted only
   * from a connection that presented that certificate (see {@link VerifyContext}).
   */
  readonly boundCertificate: string | undefined
  /** Base64url SHA-256 prefix of the token: safe to log, unlike the token itself. */
  readonly tokenDigest: string
  /** Every claim of the token, deep-frozen. */
  readonly claims: Readonly<Record<string, unknown>>
}

/** Options of {@link createVerifier}. Checked once, when the verifier is created. */
export interface VerifierOptions {
  /** The exact `iss` accepted (RFC 7519 §4.1.1: no normalization, not even of a trailing slash). */
  readonly issuer: string
  /** The audience(s) this service answers to; one must be in the token's `aud`. Required. */
  readonly audience: string | readonly string[]
  /** Where the issuer publishes its keys. Give exactly one of jwksUri, discoveryUrl, jwks. */
  readonly jwksUri?: string | URL
  /**
   * OpenID Connect Discovery / RFC 8414 metadata URL; its `jwks_uri` is used, and its `issuer`
   * must equal {@link VerifierOptions.issuer} (OIDC Discovery 1.0 §4.3).
   */
  readonly discoveryUrl?: string | URL
  /** A local JWK Set (public keys), for tests or keys distributed out of band. */
  readonly jwks?: JSONWebKeySet
  /**
   * HMAC key for HS256/384/512, at least as long as the hash (RFC 7518 §3.2). HS* tokens are
   * verified with this secret only, never with a JWKS key (RFC 8725 §2.1).
   */
  readonly secret?: string | Uint8Array
  /**
   * Allowlist of JWS algorithms. Default: RS256, PS256, ES256, EdDSA (asymmetric only, as the
   * gateway). "none" is never accepted; HS* needs {@link VerifierOptions.secret}.
   */
  readonly algorithms?: readonly string[]
  /** Required JOSE `typ`, e.g. "at+jwt" (RFC 9068 §2.1); compared case-insensitively, "application/" optional. */
  readonly requiredTyp?: string
  /** Clock skew allowed on exp, nbf and iat, in seconds. Default 30. */
  readonly clockToleranceSec?: number
  /** Longest lifetime accepted (exp - iat, or exp - now without iat), in seconds. Default 3600. */
  readonly maxTokenLifetimeSec?: number
  /** When set, `iat` is required and the token may be at most this many seconds old. */
  readonly maxTokenAgeSec?: number
  /** Realm of WWW-Authenticate challenges (RFC 6750 §3). Default "portcullis". */
  readonly realm?: string
  /** Timeout of each discovery and JWKS request, in ms. Default 5000. */
  readonly fetchTimeoutMs?: number
  /**
   * After a JWKS fetch, an unknown `kid` triggers no new fetch for this long, in seconds, so
   * forged kids cannot make us hammer the issuer. Default 30.
   */
  readonly jwksCooldownSec?: number
  /** The JWKS is fetched again when older than this, in seconds. Default 600. */
  readonly jwksCacheMaxAgeSec?: number
  /** Verified tokens remembered (by SHA-256 digest, until `exp`). Default 1000; 0 turns it off. */
  readonly tokenCacheSize?: number
  /** Longest token accepted, in bytes. Default 8192, as the gateway. */
  readonly maxTokenBytes?: number
  /** Clock in epoch milliseconds, for tests. Default Date.now. */
  readonly now?: () => number
}

/** What {@link Verifier.verify} may know of the request besides its token. */
export interface VerifyContext {
  /**
   * The client certificate (DER) of the request's TLS connection; omitted or null when it
   * presented none. Read only for a token bound to a certificate (RFC 8705 §3), which is refused
   * without it (`certificate_missing`) or with another one (`certificate_mismatch`). The adapters
   * fill it in from the request's socket. Behind a TLS-terminating proxy the connection is the
   * proxy's, so bound tokens cannot be checked there and are refused.
   */
  readonly clientCertificate?: Uint8Array | null
}

/** What {@link createVerifier} returns. */
export interface Verifier {
  readonly issuer: string
  /** Realm for challenges; the adapters use it. */
  readonly realm: string
  /**
   * Verifies an `Authorization` header value (`Bearer <token>`) or a bare token, and resolves to
   * the identity it carries. Rejects with a {@link VerifyError} only. A token bound to a client
   * certificate (`cnf`) needs `context.clientCertificate`; any other `cnf` is refused.
   */
  verify(authorizationHeaderOrToken: string | undefined | null, context?: VerifyContext): Promise<Identity>
  /**
   * Fetches the discovery document and the JWKS now, instead of on the first request (for a
   * readiness probe). Rejects with ERR_AUTHN_IDP_UNAVAILABLE when they cannot be loaded.
   */
  warmUp(): Promise<void>
}
