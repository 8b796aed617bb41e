import { countAuthorizationHeaders, hasQueryToken } from '@portcullis/verify/rules'
import type { Config } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, Identity, RequestContext, Stage } from '../stage.js'
import { extractBearer } from './bearer.js'
import { bindingRefusal, boundCertificate, checkBinding } from './binding.js'
import { certificateIdentity, hasCertificateIdentity } from './certificate.js'
import { buildIdentity, checkClaims, checkHeaderPolicy, checkHeaderShape, namedBy } from './claims.js'
import { compileIssuer, IssuerConfigError, type IssuerRuntime } from './issuer.js'
import { parseCompact, type ParsedJwt } from './jwt-parse.js'
import { bearerHint, decodedJwt, loggedDigest, presented, type TokenHolder } from './presented.js'
import type { Payload } from './claims.js'
import type { SignatureVerifier, SigningKey } from './jwt-verify.js'
import type { KeyStore, Scheduler } from './key-store.js'
import { MAX_TOKEN_BYTES, TOKEN_CACHE_MAX_ENTRIES } from './limits.js'
import { invalidToken, malformed } from './reject.js'
import { usedProtocolToken } from '../../http/websocket.js'
import { TokenCache } from './token-cache.js'

export interface AuthnStage extends Stage {
  /** Loads discovery documents and keys for every issuer; resolves when the first load settled. */
  start(): Promise<void>
  /**
   * True when authn will accept the request from its verified-token cache (no signature
   * verification, no refusal). A hint for the limits stage; it decides nothing about access.
   */
  knownToken(ctx: RequestContext): boolean
  /**
   * The claims of the request's bearer token for brute-force counting: the verified claims when
   * the token is in the cache, else the UNVERIFIED payload (who the token claims to be) when its
   * `iss` is a configured issuer. Undefined without a decodable bearer JWT. Never a basis for access.
   */
  presentedClaims(ctx: TokenHolder): Payload | undefined
  ready(): boolean
  /** The key store of an issuer (by config id), for the next config's stage to take over. */
  keyStore(issuerId: string): KeyStore | undefined
  close(): Promise<void>
}

/** Test seams and the reload hand-over; production uses the defaults. */
export interface AuthnOptions {
  /** The running config's key stores (a reload): each issuer takes over the keys of its namesake when they fetch from the same place (KeyStore.adopt). */
  readonly previousKeys?: (issuerId: string) => KeyStore | undefined
  /** Timer for background key refresh (default: unref'd setTimeout). */
  readonly schedule?: Scheduler
  /** Bound of the verified-token cache (default TOKEN_CACHE_MAX_ENTRIES). */
  readonly cacheSize?: number
}

/**
 * Bearer JWT access-token authentication (RFC 6750, RFC 9068, RFC 8725) for several issuers, and
 * client-certificate authentication on `auth: certificate` routes (certificate.ts).
 *
 * Per request: a plain "Bearer <token>" whose digest is in the verified-token cache is accepted at
 * once (cachedIdentity); otherwise: extract exactly one bearer token → digest → cache → size cap → parse
 * → issuer-independent header checks → issuer selection by the unverified `iss` (exact match) →
 * route's issuer restriction → algorithm allowlist and typ → key by kid (refresh once per interval
 * on an unknown kid) → signature (node:crypto or jose) → claims → ctx.identity.
 *
 * Why a credential that fails stops the request instead of falling through to anonymous: a route
 * is either public (this stage does nothing) or requires a valid token; there is no "optional"
 * auth, so an invalid token is never quietly downgraded.
 *
 * @example
 * const authn = createAuthnStage(config, { now: Date.now, events, logger })
 * await authn.start() // keys loaded (or first attempt failed; see authn.ready())
 */
export function createAuthnStage(config: Config, deps: Deps, options: AuthnOptions = {}): AuthnStage {
  const cache = new TokenCache(options.cacheSize ?? TOKEN_CACHE_MAX_ENTRIES)
  // A key the issuer no longer publishes verifies no new token; the tokens it verified before
  // leave the cache with it (a key removed after a compromise must stop working at once).
  const issuers = config.issuers.map((cfg) => compileIssuer(cfg, deps, options.schedule, () => cache.dropIssuer(cfg.id)))
  if (options.previousKeys !== undefined) {
    for (const issuer of issuers) {
      const prev = options.previousKeys(issuer.id)
      if (issuer.store !== undefined && prev !== undefined) issuer.store.adopt(prev)
    }
  }
  const byIss = new Map<string, IssuerRuntime>()
  for (const issuer of issuers) {
    const other = byIss.get(issuer.iss)
    // Issuer selection is by the exact iss string; two entries for one iss would make it ambiguous.
    if (other) throw new IssuerConfigError(issuer.id, `has the same issuer as "${other.id}"`)
    byIss.set(issuer.iss, issuer)
  }
  const now = deps.now

  function accept(ctx: RequestContext, jwt: ParsedJwt, issuer: IssuerRuntime, digest: string, verified: boolean, cacheable: boolean): void {
    if (!verified) throw invalidToken('bad_signature')
    const t = now()
    let bound: string | undefined
    try {
      checkClaims(jwt.payload, issuer.policy, t)
      bound = boundCertificate(jwt.payload)
      checkBinding(bound, ctx.req)
    } catch (err) {
      ctx.refusedToken = { ...namedBy(jwt.payload), issuer: issuer.iss }
      throw err
    }
    const identity = buildIdentity(jwt.payload, issuer.id, ctx.tokenDigest!, bound)
    // A bound token is cached too: every hit checks its binding again (acceptCached).
    if (cacheable) cache.admit(digest, identity, t)
    ctx.identity = identity
  }

  function verifyWith(ctx: RequestContext, jwt: ParsedJwt, issuer: IssuerRuntime, digest: string, keys: readonly SigningKey[]): void | Promise<void> {
    const result = tryKeys(jwt, keys, issuer.verify, 0)
    if (typeof result === 'boolean') return accept(ctx, jwt, issuer, digest, result, true)
    // The key set may lose the key while an asynchronous check runs: the request was verified
    // with keys valid when it arrived, but its token is cached only if no key left meanwhile.
    const removals = issuer.store?.keyRemovals
    return result.then((ok) => accept(ctx, jwt, issuer, digest, ok, issuer.store?.keyRemovals === removals))
  }

  function idpUnavailable(store: KeyStore): GatewayError {
    return new GatewayError('ERR_AUTHN_IDP_UNAVAILABLE', {
      reason: 'no_keys',
      headers: { 'retry-after': String(store.retryAfterSec()) },
      detail: 'The signing keys of the token issuer could not be loaded. Retry later.',
    })
  }

  function withKeys(ctx: RequestContext, jwt: ParsedJwt, issuer: IssuerRuntime, digest: string, store: KeyStore): void | Promise<void> {
    const alg = jwt.header.alg as string
    const kid = jwt.header.kid as string | undefined
    const keys = store.keysFor(kid, alg)
    if (keys.length > 0) return verifyWith(ctx, jwt, issuer, digest, keys)
    // A kid we know but not for this alg/key type: no refresh will help (RFC 8725 §3.1, key type
    // must match alg).
    if (kid === undefined || store.hasKid(kid)) throw invalidToken('no_matching_key')
    // An unknown kid usually means the IdP rotated keys: refetch, at most once per interval.
    const refresh = store.refreshOnDemand('unknown_kid')
    if (refresh === undefined) throw invalidToken('unknown_kid')
    return refresh.then(() => {
      const again = store.keysFor(kid, alg)
      if (again.length === 0) throw invalidToken(store.hasKid(kid) ? 'no_matching_key' : 'unknown_kid')
      return verifyWith(ctx, jwt, issuer, digest, again)
    })
  }

  function verifyToken(ctx: RequestContext, jwt: ParsedJwt, issuer: IssuerRuntime, digest: string): void | Promise<void> {
    const hmac = issuer.hmacKeys.get(jwt.header.alg as string)
    if (hmac !== undefined) return verifyWith(ctx, jwt, issuer, digest, [hmac])
    // checkHeaderPolicy let an asymmetric alg through, so this issuer has a key store.
    const store = issuer.store!
    if (store.ready()) return withKeys(ctx, jwt, issuer, digest, store)
    const loading = store.refreshOnDemand('no_keys')
    if (loading === undefined) throw idpUnavailable(store)
    return loading.then(() => {
      if (!store.ready()) throw idpUnavailable(store)
      return withKeys(ctx, jwt, issuer, digest, store)
    })
  }

  /**
   * The identity of a token verified before, found without parsing the Authorization field: the
   * plain form "Bearer <token>" (one or more spaces, scheme in any case) whose token digest is in the cache.
   * A hit gives the answer the full parse would: the cache only holds tokens that passed it (so
   * the token's syntax is valid), and the other refusals of that parse (a token in the query, a
   * second Authorization field) are checked here. Anything else (a miss, another spelling of the
   * field) takes the full path. Saves a regular-expression pass over the token per cached request.
   */
  function cachedIdentity(ctx: RequestContext): Identity | undefined {
    const token = bearerHint(ctx.req.headers.authorization)
    if (token === undefined) return undefined
    const identity = cache.get(presented(ctx, token).digest, now())
    if (identity === undefined || hasQueryToken(ctx.query) || countAuthorizationHeaders(ctx.req.rawHeaders) !== 1) return undefined
    return identity
  }

  /** The route's issuer restriction (no restriction: every configured issuer). */
  function issuerAllowed(ctx: RequestContext, issuerId: string): boolean {
    const accepted = ctx.route?.issuers
    return accepted === undefined || accepted.has(issuerId)
  }

  /** The cache remembers who a token is, not where it may go: the route's issuers are checked on every hit. */
  function acceptCached(ctx: RequestContext, identity: Identity): void {
    if (!issuerAllowed(ctx, identity.issuerId)) throw invalidToken('issuer_not_allowed')
    const refusal = bindingRefusal(identity.boundCertificate, ctx.req)
    if (refusal !== undefined) {
      // Authentic but used without its certificate: the denial event names whose token it is.
      ctx.refusedToken = identity
      throw invalidToken(refusal)
    }
    ctx.identity = identity
  }

  function onRequest(ctx: RequestContext): void | Promise<void> {
    const route = ctx.route
    // A token taken from a handshake's Sec-WebSocket-Protocol (http/websocket.ts) counts only
    // where the route accepts it there; on any other route it is refused, not passed on unverified.
    if (ctx.upgradeHead !== undefined && !route?.websocketTokenProtocol && usedProtocolToken(ctx.req)) {
      throw malformed('protocol_token', 'Send the access token in the Authorization header; this route takes none in Sec-WebSocket-Protocol.')
    }
    if (route !== undefined && route.auth !== 'required') {
      // A certificate route's credential is the connection's certificate; a bearer token it
      // carries is not looked at (and is no substitute for the certificate).
      if (route.auth === 'certificate') ctx.identity = certificateIdentity(ctx.req, now())
      return
    }
    const hit = cachedIdentity(ctx)
    if (hit !== undefined) {
      ctx.tokenDigest = hit.tokenDigest
      return acceptCached(ctx, hit)
    }
    const req = ctx.req
    const token = extractBearer(req.rawHeaders, req.headers.authorization, ctx.query)
    // Set first, so that every failure event from here on names the token by digest (never by value).
    const memo = presented(ctx, token)
    const digest = memo.digest
    ctx.tokenDigest = loggedDigest(memo)
    if (token.length > MAX_TOKEN_BYTES) throw invalidToken('too_large')
    // cachedIdentity looked most tokens up already; this keeps the full path whole on its own.
    const cached = cache.get(digest, now())
    if (cached !== undefined) return acceptCached(ctx, cached)
    // Decoded already when the limits stage asked whom the token claims to be (null: it is not a
    // JWS, parsed again only to raise the error); otherwise decoded here, once, and remembered.
    const jwt = memo.jwt ?? (memo.jwt === null ? parseCompact(token) : (memo.jwt = parseCompact(token)))
    checkHeaderShape(jwt.header)
    const iss = jwt.payload.iss
    const issuer = typeof iss === 'string' ? byIss.get(iss) : undefined
    if (issuer === undefined) throw invalidToken('unknown_issuer')
    if (!issuerAllowed(ctx, issuer.id)) throw invalidToken('issuer_not_allowed')
    checkHeaderPolicy(jwt.header, issuer.policy)
    return verifyToken(ctx, jwt, issuer, digest)
  }

  return {
    name: 'authn',
    onRequest,
    knownToken(ctx) {
      // The same rule as onRequest: a certificate it would refuse (an expired one too) is no known credential.
      if (ctx.route?.auth === 'certificate') return hasCertificateIdentity(ctx.req, now())
      // True only when onRequest will accept from the cache: the limits stage then skips its
      // before-authn store call, so a request authn refuses after all (a second Authorization
      // header, a token in the query, an issuer the route does not accept) must answer false here.
      // The same lookup onRequest starts with (the digest is computed once per request).
      const hit = cachedIdentity(ctx)
      return hit !== undefined && issuerAllowed(ctx, hit.issuerId) && bindingRefusal(hit.boundCertificate, ctx.req) === undefined
    },
    presentedClaims(ctx) {
      const token = bearerHint(ctx.req.headers.authorization)
      if (token === undefined) return undefined
      const memo = presented(ctx, token)
      const cached = cache.get(memo.digest, now())
      if (cached !== undefined) return cached.claims
      const payload = decodedJwt(memo)?.payload
      // A token naming an issuer we do not accept names no account of ours.
      return payload !== undefined && typeof payload.iss === 'string' && byIss.has(payload.iss) ? payload : undefined
    },
    async start() {
      await Promise.all(issuers.map((i) => i.store?.start()))
    },
    ready: () => issuers.every((i) => i.store === undefined || i.store.ready()),
    keyStore: (issuerId) => issuers.find((i) => i.id === issuerId)?.store,
    async close() {
      await Promise.all(issuers.map((i) => i.store?.close()))
      cache.clear()
    },
  } satisfies AuthnStage
}

/**
 * Tries each candidate key until one verifies. Stays synchronous while the verifier does
 * (node:crypto); chains promises only for an async verifier (jose).
 */
function tryKeys(jwt: ParsedJwt, keys: readonly SigningKey[], verify: SignatureVerifier, from: number): boolean | Promise<boolean> {
  for (let i = from; i < keys.length; i++) {
    const r = verify(jwt, keys[i])
    if (r === true) return true
    if (r !== false) return r.then((ok) => ok || (i + 1 < keys.length && tryKeys(jwt, keys, verify, i + 1)))
  }
  return false
}
