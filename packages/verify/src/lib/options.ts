import type { JSONWebKeySet } from 'jose'
import type { VerifierOptions } from '../types.js'
import { DEFAULT_REALM } from '../verify-error.js'
import { MAX_TOKEN_BYTES, TOKEN_CACHE_MAX_ENTRIES } from './limits.js'
import { normalizeTyp, type TokenPolicy } from './policy.js'

/** The gateway's default allowlist: asymmetric algorithms only. */
export const DEFAULT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const

/** Asymmetric JWS algorithms jose verifies (RFC 7518 §3, RFC 8037 §3.1). */
const ASYMMETRIC = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'])

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output. */
const HMAC_MIN_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 }

/** Options after checking and defaults. */
export interface CompiledOptions {
  readonly policy: TokenPolicy
  readonly realm: string
  readonly jwksUri: URL | undefined
  readonly discoveryUrl: URL | undefined
  readonly jwks: JSONWebKeySet | undefined
  readonly secret: Uint8Array | undefined
  readonly fetchTimeoutMs: number
  readonly cooldownMs: number
  readonly cacheMaxAgeMs: number
  readonly tokenCacheSize: number
  readonly maxTokenBytes: number
  readonly now: () => number
}

function fail(message: string): never {
  throw new TypeError(`@portcullis/verify: ${message}`)
}

function nonNegative<F extends number | undefined>(name: string, value: number | undefined, fallback: F, integer = false): number | F {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    fail(`"${name}" must be a non-negative ${integer ? 'integer' : 'number'}`)
  }
  return value
}

function httpUrl(name: string, value: string | URL): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail(`"${name}" is not a URL`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`"${name}" must be an http(s) URL`)
  return url
}

/**
 * Checks the options once, when the verifier is made (never per request), and fails loudly: a
 * library that quietly dropped "none" or an HS* without a secret would leave the caller believing
 * something that is not so.
 */
export function compileOptions(o: VerifierOptions): CompiledOptions {
  if (o === null || typeof o !== 'object') fail('options are required')
  if (typeof o.issuer !== 'string' || o.issuer === '') fail('"issuer" is required')
  const audiences = typeof o.audience === 'string' ? [o.audience] : Array.isArray(o.audience) ? [...o.audience] : []
  // RFC 9068 §4: the resource server MUST validate aud. A verifier that accepted any audience would
  // accept tokens minted for every other service of the same issuer.
  if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a === '')) fail('"audience" is required (a string or a non-empty array of strings)')

  const algorithms = new Set<string>()
  let secret: Uint8Array | undefined
  if (o.secret !== undefined) {
    secret = typeof o.secret === 'string' ? new TextEncoder().encode(o.secret) : new Uint8Array(o.secret)
  }
  for (const alg of o.algorithms ?? DEFAULT_ALGORITHMS) {
    if (typeof alg !== 'string') fail('"algorithms" must be strings')
    // RFC 8725 §3.1: never "none", in any casing.
    if (alg.toLowerCase() === 'none') fail('algorithm "none" is never accepted')
    if (HMAC_MIN_BYTES[alg] !== undefined) {
      // RFC 8725 §2.1: an HMAC algorithm is verified with a configured shared secret only, never
      // with a key from the JWKS; that is what makes "HS256 signed with the RSA public key" fail.
      if (secret === undefined) fail(`${alg} needs "secret" (HMAC is never verified with a JWKS key)`)
      if (secret.byteLength < HMAC_MIN_BYTES[alg]) fail(`"secret" must be at least ${HMAC_MIN_BYTES[alg]} bytes for ${alg} (RFC 7518 §3.2)`)
    } else if (!ASYMMETRIC.has(alg)) {
      fail(`unsupported algorithm "${alg}"`)
    }
    algorithms.add(alg)
  }
  if (algorithms.size === 0) fail('"algorithms" is empty')
  const hasAsymmetric = [...algorithms].some((a) => ASYMMETRIC.has(a))
  if (secret !== undefined && ![...algorithms].some((a) => HMAC_MIN_BYTES[a] !== undefined)) {
    fail('"secret" is set but no HS* algorithm is allowed')
  }

  const sources = [o.jwksUri, o.discoveryUrl, o.jwks].filter((s) => s !== undefined).length
  if (sources > 1) fail('give only one of "jwksUri", "discoveryUrl" and "jwks"')
  if (hasAsymmetric && sources === 0) fail('give "jwksUri", "discoveryUrl" or "jwks" for asymmetric algorithms')
  if (o.jwks !== undefined && !(o.jwks !== null && typeof o.jwks === 'object' && Array.isArray(o.jwks.keys))) {
    fail('"jwks" must be a JWK Set ({ keys: [...] })')
  }
  if (o.jwks?.keys.some((k) => k !== null && typeof k === 'object' && ('d' in k || k.kty === 'oct'))) {
    // Private or symmetric key material in the set means a key got published that should not have
    // been (and a symmetric JWK next to RS256 is the setup of the algorithm-confusion attack).
    fail('"jwks" must hold public keys only')
  }
  if (o.requiredTyp !== undefined && (typeof o.requiredTyp !== 'string' || o.requiredTyp === '')) fail('"requiredTyp" must be a non-empty string')
  if (o.now !== undefined && typeof o.now !== 'function') fail('"now" must be a function')

  const cooldownSec = nonNegative('jwksCooldownSec', o.jwksCooldownSec, 30)
  const cacheMaxAgeSec = nonNegative('jwksCacheMaxAgeSec', o.jwksCacheMaxAgeSec, 600)
  const maxTokenAgeSec = nonNegative('maxTokenAgeSec', o.maxTokenAgeSec, undefined)
  const maxTokenLifetimeSec = nonNegative('maxTokenLifetimeSec', o.maxTokenLifetimeSec, 3600)
  if (maxTokenLifetimeSec === 0) fail('"maxTokenLifetimeSec" must be positive')

  return {
    policy: Object.freeze({
      issuer: o.issuer,
      audiences: Object.freeze(audiences),
      algorithms,
      clockToleranceSec: nonNegative('clockToleranceSec', o.clockToleranceSec, 30),
      maxTokenLifetimeSec,
      maxTokenAgeSec,
      requiredTyp: o.requiredTyp !== undefined ? normalizeTyp(o.requiredTyp) : undefined,
    }),
    realm: o.realm ?? DEFAULT_REALM,
    jwksUri: o.jwksUri !== undefined ? httpUrl('jwksUri', o.jwksUri) : undefined,
    discoveryUrl: o.discoveryUrl !== undefined ? httpUrl('discoveryUrl', o.discoveryUrl) : undefined,
    jwks: o.jwks,
    secret,
    fetchTimeoutMs: nonNegative('fetchTimeoutMs', o.fetchTimeoutMs, 5_000, true),
    cooldownMs: cooldownSec * 1000,
    cacheMaxAgeMs: cacheMaxAgeSec * 1000,
    tokenCacheSize: nonNegative('tokenCacheSize', o.tokenCacheSize, TOKEN_CACHE_MAX_ENTRIES, true),
    maxTokenBytes: nonNegative('maxTokenBytes', o.maxTokenBytes, MAX_TOKEN_BYTES, true),
    now: o.now ?? Date.now,
  }
}
