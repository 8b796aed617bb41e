import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type CompactJWSHeaderParameters,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
} from 'jose'
import { VerifyError } from '../verify-error.js'
import { FetchFailure, fetchJsonObject } from './fetch-document.js'
import { IDP_RETRY_AFTER_SEC } from './limits.js'
import { invalidToken } from './reject.js'

type KeyResolver = (header: CompactJWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>
type RemoteSet = ReturnType<typeof createRemoteJWKSet>

export interface KeySourceOptions {
  readonly issuer: string
  readonly jwksUri: URL | undefined
  readonly discoveryUrl: URL | undefined
  readonly jwks: JSONWebKeySet | undefined
  /** HMAC secret, only for HS* (the policy admits HS* only when one is configured). */
  readonly secret: Uint8Array | undefined
  readonly fetchTimeoutMs: number
  readonly cooldownMs: number
  readonly cacheMaxAgeMs: number
  readonly now: () => number
}

/** Where signature keys come from: the configured JWKS (remote, via discovery, or local) or the secret. */
export interface KeySource {
  /**
   * jose key function. Throws a VerifyError (unknown kid, keys unavailable) or jose's
   * JWKSMultipleMatchingKeys, which the caller iterates.
   */
  readonly getKey: (header: CompactJWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | Uint8Array>
  /** Loads discovery and JWKS now. */
  warmUp(): Promise<void>
}

const isHmac = (alg: string | undefined) => alg === 'HS256' || alg === 'HS384' || alg === 'HS512'

function idpUnavailable(reason: string, cause?: unknown): VerifyError {
  return new VerifyError('ERR_AUTHN_IDP_UNAVAILABLE', {
    reason,
    retryAfterSec: IDP_RETRY_AFTER_SEC,
    detail: 'The signing keys of the token issuer could not be loaded. Retry later.',
    cause,
  })
}

/** A key the JWKS has no match for: a kid it does not publish, or one not usable with this alg. */
function noKey(kid: string | undefined, published: JSONWebKeySet | undefined): VerifyError {
  // Same distinction as the gateway: a kid the issuer publishes but for another key type or alg
  // is no rotation, no refresh helps (RFC 8725 §3.1); an unknown kid is.
  if (kid === undefined || published?.keys.some((k) => k.kid === kid)) return invalidToken('no_matching_key')
  return invalidToken('unknown_kid')
}

/** Maps what a jose key set threw, other than a failed fetch. */
function keyError(err: unknown, header: CompactJWSHeaderParameters, set: { jwks(): JSONWebKeySet | undefined }): unknown {
  if (err instanceof errors.JWKSMultipleMatchingKeys) return err
  if (err instanceof VerifyError) return err
  if (err instanceof errors.JWKSNoMatchingKey) return noKey(header.kid, set.jwks())
  // A published key that cannot be imported (not a public key, bad parameters): unusable, like
  // the keys the gateway skips when it imports a JWKS.
  return invalidToken('no_matching_key')
}

const isFetchFailure = (err: unknown) => err instanceof FetchFailure || err instanceof errors.JWKSTimeout

/**
 * Builds the key source. Remote keys use jose.createRemoteJWKSet (its cache, its cooldown on
 * unknown kids, its coalescing of concurrent fetches), with three additions the gateway has too:
 * - every fetch is capped in size and follows no redirect (fetch-document.ts);
 * - a failed refresh keeps the last good keys: an IdP outage must not become the service's outage;
 * - after a failed fetch, no new fetch for IDP_RETRY_AFTER_SEC, so an outage does not make every
 *   request wait for a timeout.
 */
export function createKeySource(options: KeySourceOptions): KeySource {
  const { secret, now } = options
  if (options.jwks !== undefined) {
    // createLocalJWKSet copies the set, so later changes to the caller's object change nothing.
    const local = createLocalJWKSet(options.jwks)
    return {
      async getKey(header, token) {
        if (isHmac(header.alg)) return secret!
        try {
          return await local(header, token)
        } catch (err) {
          throw keyError(err, header, local)
        }
      },
      async warmUp() {},
    }
  }

  /** Bumped by every successful JWKS fetch, so the fallback set is rebuilt after one. */
  let generation = 0
  let fallback: { generation: number; set: KeyResolver & { jwks(): JSONWebKeySet | undefined } } | undefined
  let retryAt = 0
  let remote: RemoteSet | undefined
  let discovering: Promise<RemoteSet> | undefined

  async function jwksFetch(url: string, init: { headers: Headers; signal: AbortSignal }): Promise<Response> {
    const doc = await fetchJsonObject(url, init.signal, init.headers)
    if (!Array.isArray(doc.keys)) throw new FetchFailure('jwks_invalid')
    generation++
    return new Response(JSON.stringify(doc), { status: 200, headers: { 'content-type': 'application/json' } })
  }

  function makeRemote(url: URL): RemoteSet {
    return createRemoteJWKSet(url, {
      timeoutDuration: options.fetchTimeoutMs,
      cooldownDuration: options.cooldownMs,
      cacheMaxAge: options.cacheMaxAgeMs,
      [customFetch]: jwksFetch,
    })
  }

  async function discover(url: URL): Promise<RemoteSet> {
    const doc = await fetchJsonObject(url.href, AbortSignal.timeout(options.fetchTimeoutMs))
    // OIDC Discovery 1.0 §4.3 / RFC 8414 §3.3: the issuer in the metadata MUST be identical to
    // the issuer the metadata was looked up for; otherwise an attacker-controlled document could
    // point us at their keys.
    if (doc.issuer !== options.issuer) throw new FetchFailure('discovery_issuer_mismatch')
    if (typeof doc.jwks_uri !== 'string') throw new FetchFailure('discovery_invalid')
    let jwksUri: URL
    try {
      jwksUri = new URL(doc.jwks_uri)
    } catch {
      throw new FetchFailure('discovery_invalid')
    }
    if (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:') throw new FetchFailure('discovery_invalid')
    // No downgrade: keys named by a document fetched over TLS are fetched over TLS too; a plain
    // http jwks_uri would let anyone on the path replace them.
    if (url.protocol === 'https:' && jwksUri.protocol !== 'https:') throw new FetchFailure('discovery_invalid')
    return makeRemote(jwksUri)
  }

  /** The remote set, after discovery when configured. Throws a VerifyError when unavailable. */
  async function remoteSet(): Promise<RemoteSet> {
    if (remote !== undefined) return remote
    if (options.jwksUri !== undefined) return (remote = makeRemote(options.jwksUri))
    if (now() < retryAt) throw idpUnavailable('backoff')
    discovering ??= discover(options.discoveryUrl!)
    try {
      remote = await discovering
      return remote
    } catch (err) {
      discovering = undefined
      retryAt = now() + IDP_RETRY_AFTER_SEC * 1000
      throw idpUnavailable(err instanceof FetchFailure ? err.reason : 'discovery_failed', err)
    }
  }

  /** The last keys fetched successfully, while the remote set cannot refresh. */
  function lastGood(set: RemoteSet): typeof fallback {
    if (fallback?.generation === generation) return fallback
    const snapshot = set.jwks()
    if (snapshot === undefined) return undefined
    const local = createLocalJWKSet(snapshot)
    return (fallback = { generation, set: local })
  }

  async function fromFallback(header: CompactJWSHeaderParameters, token: FlattenedJWSInput, reason: string, cause?: unknown): Promise<CryptoKey> {
    const last = remote !== undefined ? lastGood(remote) : undefined
    if (last === undefined) throw idpUnavailable(reason, cause)
    try {
      return await last.set(header, token)
    } catch (err) {
      throw keyError(err, header, last.set)
    }
  }

  return {
    async getKey(header, token) {
      if (isHmac(header.alg)) return secret!
      const set = await remoteSet()
      if (now() < retryAt) return fromFallback(header, token, 'backoff')
      try {
        return await set(header, token)
      } catch (err) {
        if (!isFetchFailure(err)) throw keyError(err, header, set)
        retryAt = now() + IDP_RETRY_AFTER_SEC * 1000
        return fromFallback(header, token, err instanceof FetchFailure ? err.reason : 'timeout', err)
      }
    },
    async warmUp() {
      const set = await remoteSet()
      try {
        await set.reload()
      } catch (err) {
        throw idpUnavailable(err instanceof FetchFailure ? err.reason : 'jwks_failed', err)
      }
    },
  }
}
