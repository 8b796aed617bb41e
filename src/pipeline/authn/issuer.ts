import type { IssuerConfig } from '../../config/schema.js'
import type { Deps } from '../stage.js'
import { normalizeTyp, type TokenPolicy } from './claims.js'
import { ASYMMETRIC_ALGS, HMAC_HASH } from './jwk-import.js'
import { signatureVerifier, type HmacKey, type SignatureVerifier } from './jwt-verify.js'
import { KeyStore, type Scheduler } from './key-store.js'

/** One configured issuer, compiled at config load: its rules, its keys and its signature path. */
export interface IssuerRuntime {
  readonly id: string
  /** The exact `iss` its tokens carry. */
  readonly iss: string
  readonly policy: TokenPolicy
  /** Undefined for an issuer that only uses HMAC with a shared secret. */
  readonly store: KeyStore | undefined
  /** alg → the shared secret, for the HS* algorithms this issuer allows. */
  readonly hmacKeys: ReadonlyMap<string, HmacKey>
  readonly verify: SignatureVerifier
}

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output. */
const HMAC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 }

const OIDC_WELL_KNOWN = '/.well-known/openid-configuration'
const OAUTH_WELL_KNOWN = '/.well-known/oauth-authorization-server'

/**
 * The issuer a discovery URL belongs to: OIDC Discovery 1.0 §4 appends the well-known path to the
 * issuer; RFC 8414 §3.1 inserts it between host and path. Undefined when the URL is neither.
 */
export function issuerFromDiscoveryUrl(url: string): string | undefined {
  if (url.endsWith(OIDC_WELL_KNOWN)) return url.slice(0, -OIDC_WELL_KNOWN.length)
  const u = new URL(url)
  if (u.pathname.startsWith(OAUTH_WELL_KNOWN) && !u.search) return u.origin + u.pathname.slice(OAUTH_WELL_KNOWN.length)
  return undefined
}

export class IssuerConfigError extends Error {
  constructor(issuerId: string, message: string) {
    super(`issuer "${issuerId}": ${message}`)
    this.name = 'IssuerConfigError'
  }
}

/**
 * Builds an issuer's runtime. Invalid combinations throw IssuerConfigError (at config load, never
 * per request). Algorithms that can never be accepted are dropped with a warning:
 * "none" in any casing (RFC 8725 §3.1), and HS* without a sharedSecret (an HMAC alg is verified with
 * the shared secret only, never with a JWKS key, RFC 8725 §2.1).
 */
export function compileIssuer(cfg: IssuerConfig, deps: Deps, schedule?: Scheduler, onKeysRemoved?: () => void): IssuerRuntime {
  const iss = cfg.issuer ?? (cfg.discoveryUrl !== undefined ? issuerFromDiscoveryUrl(cfg.discoveryUrl) : undefined)
  if (iss === undefined) {
    throw new IssuerConfigError(cfg.id, cfg.discoveryUrl ? 'set "issuer": it cannot be derived from this discoveryUrl' : 'set "issuer" or "discoveryUrl"')
  }
  const secret = cfg.sharedSecret !== undefined ? Buffer.from(cfg.sharedSecret, 'utf8') : undefined
  const algorithms = new Set<string>()
  const hmacKeys = new Map<string, HmacKey>()
  for (const alg of cfg.algorithms as readonly string[]) {
    if (alg.toLowerCase() === 'none') {
      deps.logger.warn({ issuer: cfg.id }, 'algorithm "none" is never accepted; ignored')
    } else if (HMAC_HASH[alg] !== undefined) {
      if (secret === undefined) {
        deps.logger.warn({ issuer: cfg.id, alg }, 'HMAC algorithm without sharedSecret is never accepted; ignored')
        continue
      }
      if (secret.length < HMAC_MIN_BYTES[alg]) {
        throw new IssuerConfigError(cfg.id, `sharedSecret must be at least ${HMAC_MIN_BYTES[alg]} bytes for ${alg} (RFC 7518 §3.2)`)
      }
      algorithms.add(alg)
      hmacKeys.set(alg, { alg, secret })
    } else if (ASYMMETRIC_ALGS[alg] !== undefined) {
      algorithms.add(alg)
    }
  }
  if (algorithms.size === 0) throw new IssuerConfigError(cfg.id, 'no usable algorithm in "algorithms"')
  const asymmetric = new Set([...algorithms].filter((a) => ASYMMETRIC_ALGS[a] !== undefined))
  if (asymmetric.size > 0 && cfg.jwksUri === undefined && cfg.discoveryUrl === undefined) {
    throw new IssuerConfigError(cfg.id, 'set "jwksUri" or "discoveryUrl" for asymmetric algorithms')
  }
  if (cfg.jwksCacheMinAgeSec > cfg.jwksCacheMaxAgeSec) {
    throw new IssuerConfigError(cfg.id, 'jwksCacheMinAgeSec must not exceed jwksCacheMaxAgeSec')
  }
  const store =
    asymmetric.size === 0
      ? undefined
      : new KeyStore({
          issuerId: cfg.id,
          expectedIssuer: iss,
          discoveryUrl: cfg.discoveryUrl,
          jwksUri: cfg.jwksUri,
          algorithms: asymmetric,
          minAgeSec: cfg.jwksCacheMinAgeSec,
          maxAgeSec: cfg.jwksCacheMaxAgeSec,
          unknownKidRefreshIntervalSec: cfg.unknownKidRefreshIntervalSec,
          fetchTimeoutMs: cfg.fetchTimeoutMs,
          now: deps.now,
          events: deps.events,
          schedule,
          onKeysRemoved,
        })
  return {
    id: cfg.id,
    iss,
    policy: Object.freeze({
      issuer: iss,
      audiences: [...cfg.audiences],
      algorithms,
      clockToleranceSec: cfg.clockSkewSec,
      maxTokenLifetimeSec: cfg.maxTokenLifetimeSec,
      maxTokenAgeSec: undefined,
      requiredTyp: cfg.requiredTyp !== undefined ? normalizeTyp(cfg.requiredTyp) : undefined,
    }),
    store,
    hmacKeys,
    verify: signatureVerifier(cfg.verifier),
  }
}
