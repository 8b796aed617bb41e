import { createHash } from 'node:crypto'
import { compactVerify, errors, type CryptoKey } from 'jose'
import { tokenFrom } from './lib/bearer.js'
import { checkClaims } from './lib/check-claims.js'
import { checkHeaderPolicy, checkHeaderShape } from './lib/check-header.js'
import { bindingRefusal, boundCertificate, certificateThumbprint } from './lib/confirmation.js'
import { buildIdentity } from './lib/identity.js'
import { parseCompact } from './lib/jwt-parse.js'
import { createKeySource, type KeySource } from './lib/key-source.js'
import { MAX_KIDLESS_CANDIDATES } from './lib/limits.js'
import { compileOptions } from './lib/options.js'
import { invalidToken, withRealm } from './lib/reject.js'
import { TokenCache } from './lib/token-cache.js'
import type { Identity, Verifier, VerifierOptions, VerifyContext } from './types.js'
import { isVerifyError, VerifyError } from './verify-error.js'

/**
 * Creates a verifier for JWT access tokens of one issuer, with the gateway's safe defaults:
 *
 * - keys only from the configured JWKS (`jwksUri`, `discoveryUrl` or a local `jwks`), cached by
 *   jose.createRemoteJWKSet, refetched on an unknown `kid` at most once per cooldown; a token's own
 *   `jwk`/`x5c`/`jku`/`x5u` headers are refused and never followed (RFC 8725 §3.10);
 * - an algorithm allowlist (default RS256, PS256, ES256, EdDSA), never `none`, HMAC only with a
 *   configured secret (RFC 8725 §2.1, §3.1); `crit` refused (RFC 7515 §4.1.11);
 * - `iss` (exact), `aud` and `exp` required; `nbf` and `iat` honoured with `clockToleranceSec`; a
 *   longest lifetime; `typ` when configured (RFC 8725 §3.11); ID tokens (`nonce`, `at_hash`,
 *   `c_hash`) never accepted as access tokens (RFC 9068 §4);
 * - a token bound to a client certificate (RFC 8705 `cnf.x5t#S256`) only with that certificate
 *   (`context.clientCertificate`, filled in by the adapters), on every call, cached or not; any
 *   other `cnf` (DPoP, `jwk`) refused;
 * - a size cap (8 KiB) and a bounded cache of verified tokens by SHA-256 digest, until `exp`.
 *
 * `verify()` rejects with {@link VerifyError} only; the code says what to answer.
 *
 * @example
 * ```ts
 * import { createVerifier, requireScopes } from '@portcullis/verify'
 *
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'api://orders',
 *   jwksUri: 'https://idp.example.com/.well-known/jwks.json',
 *   requiredTyp: 'at+jwt',
 * })
 *
 * const identity = await verifier.verify(req.headers.authorization)
 * requireScopes(identity, 'orders:read')
 * console.log(identity.subject, [...identity.scopes])
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const o = compileOptions(options)
  const { policy, realm, now } = o
  const algorithms = [...policy.algorithms]
  const keys: KeySource = createKeySource({
    issuer: policy.issuer,
    jwksUri: o.jwksUri,
    discoveryUrl: o.discoveryUrl,
    jwks: o.jwks,
    secret: o.secret,
    fetchTimeoutMs: o.fetchTimeoutMs,
    cooldownMs: o.cooldownMs,
    cacheMaxAgeMs: o.cacheMaxAgeMs,
    now,
  })
  const cache = new TokenCache(o.tokenCacheSize)

  async function checkSignature(token: string): Promise<void> {
    try {
      await compactVerify(token, keys.getKey, { algorithms })
      return
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw signatureError(err)
      // A token without kid, and several published keys fit its alg: try a few of them, never all
      // (a kid-less forgery must not cost one verification per published key).
      let tried = 0
      let usable = false
      for await (const key of err as AsyncIterable<CryptoKey>) {
        if (tried++ >= MAX_KIDLESS_CANDIDATES) break
        try {
          await compactVerify(token, key, { algorithms })
          return
        } catch (e) {
          const refused = signatureError(e)
          // A published key jose will not use (an RSA key under 2048 bits, say) is skipped, as the
          // gateway skips it when it imports the JWKS: the next candidate may be the signer.
          if (refused.reason === 'no_matching_key') continue
          if (refused.reason !== 'bad_signature') throw refused
          usable = true
        }
      }
      throw invalidToken(usable ? 'bad_signature' : 'no_matching_key')
    }
  }

  async function verifyToken(token: string, context: VerifyContext | undefined): Promise<Identity> {
    if (token.length > o.maxTokenBytes) throw invalidToken('too_large')
    const digest = createHash('sha256').update(token).digest('base64url')
    const t = now()
    const cached = cache.get(digest, t)
    if (cached !== undefined) return checkBinding(cached, context)
    const { header, payload } = parseCompact(token)
    checkHeaderShape(header)
    // The unverified iss is checked before any key lookup: a token of another issuer must not
    // make us fetch keys. (RFC 7519 §4.1.1: exact comparison.)
    if (payload.iss !== policy.issuer) throw invalidToken('unknown_issuer')
    checkHeaderPolicy(header, policy)
    await checkSignature(token)
    const after = now()
    checkClaims(payload, policy, after)
    const identity = buildIdentity(payload, digest.slice(0, 16), boundCertificate(payload))
    let until = identity.expiresAt
    if (policy.maxTokenAgeSec !== undefined) until = Math.min(until, ((payload.iat as number) + policy.maxTokenAgeSec) * 1000)
    // Cached before its binding is checked: the token is valid, and every use of it, cached or
    // not, must come with its certificate.
    cache.set(digest, identity, until, after)
    return checkBinding(identity, context)
  }

  /** The identity, unless its token is bound to a certificate the request's connection did not present. */
  function checkBinding(identity: Identity, context: VerifyContext | undefined): Identity {
    if (identity.boundCertificate === undefined) return identity
    const der = context?.clientCertificate
    const refusal = bindingRefusal(identity.boundCertificate, der != null && der.length > 0 ? certificateThumbprint(der) : undefined)
    if (refusal !== undefined) throw invalidToken(refusal)
    return identity
  }

  return Object.freeze({
    issuer: policy.issuer,
    realm,
    async verify(authorizationHeaderOrToken: string | undefined | null, context?: VerifyContext): Promise<Identity> {
      try {
        return await verifyToken(tokenFrom(authorizationHeaderOrToken), context)
      } catch (err) {
        // Only VerifyError leaves verify(): anything else is a bug or an unexpected jose failure,
        // and a token we could not judge is a token we do not accept.
        if (isVerifyError(err)) throw withRealm(err, realm)
        throw new VerifyError('ERR_AUTHN_INVALID_TOKEN', { reason: 'internal', realm, cause: err })
      }
    },
    async warmUp(): Promise<void> {
      try {
        await keys.warmUp()
      } catch (err) {
        if (isVerifyError(err)) throw withRealm(err, realm)
        throw err
      }
    },
  } satisfies Verifier)
}

/** What jose's compactVerify threw, as a VerifyError (the key function throws those itself). */
function signatureError(err: unknown): VerifyError {
  if (err instanceof VerifyError) return err
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalidToken('bad_signature')
  if (err instanceof errors.JOSEAlgNotAllowed) return invalidToken('alg_not_allowed')
  if (err instanceof errors.JWSInvalid) return invalidToken('malformed')
  // jose refuses a key it cannot use with this alg (e.g. an RSA key under 2048 bits, RFC 7518
  // §3.3) with a TypeError: the issuer published no key we accept for this token.
  if (err instanceof TypeError || err instanceof errors.JOSENotSupported) return invalidToken('no_matching_key')
  return invalidToken('malformed')
}
