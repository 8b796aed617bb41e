import { constants, KeyObject, type VerifyKeyObjectInput, type VerifyPublicKeyInput } from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import { importJWK, type CryptoKey, type JWK } from 'jose'
import { MAX_JWKS_KEYS } from './limits.js'

/** One public key, usable with exactly one algorithm, imported once when the JWKS is loaded. */
export interface VerificationKey {
  readonly kid: string | undefined
  readonly alg: string
  /** For jose.compactVerify. */
  readonly cryptoKey: CryptoKey
  /** For node:crypto.verify, with the padding/encoding options of `alg` already attached. */
  readonly nodeKey: KeyObject | VerifyKeyObjectInput | VerifyPublicKeyInput
  /** Digest name for node:crypto.verify (null for EdDSA). */
  readonly hash: string | null
}

/** node:crypto parameters per JWS algorithm (RFC 7518 §3). */
interface AlgSpec {
  readonly kty: 'RSA' | 'EC' | 'OKP'
  readonly crv?: string
  readonly hash: string | null
  /** RFC 7518 §3.5: RSASSA-PSS with MGF1 and a salt as long as the hash. */
  readonly pssSalt?: number
  /** RFC 7518 §3.4: ECDSA signatures are R || S, not DER. */
  readonly p1363?: boolean
}

export const ASYMMETRIC_ALGS: Readonly<Record<string, AlgSpec>> = {
  RS256: { kty: 'RSA', hash: 'sha256' },
  RS384: { kty: 'RSA', hash: 'sha384' },
  RS512: { kty: 'RSA', hash: 'sha512' },
  PS256: { kty: 'RSA', hash: 'sha256', pssSalt: 32 },
  PS384: { kty: 'RSA', hash: 'sha384', pssSalt: 48 },
  PS512: { kty: 'RSA', hash: 'sha512', pssSalt: 64 },
  ES256: { kty: 'EC', crv: 'P-256', hash: 'sha256', p1363: true },
  ES384: { kty: 'EC', crv: 'P-384', hash: 'sha384', p1363: true },
  ES512: { kty: 'EC', crv: 'P-521', hash: 'sha512', p1363: true },
  // RFC 8037 §3.1; Ed448 is left out because jose (WebCrypto) does not verify it.
  EdDSA: { kty: 'OKP', crv: 'Ed25519', hash: null },
}

export const HMAC_HASH: Readonly<Record<string, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }

/** RFC 7518 §3.3: RSA keys of 2048 bits or more (jose enforces the same on its path). */
const MIN_RSA_BITS = 2048

export interface ImportResult {
  readonly keys: VerificationKey[]
  /** JWKs that yielded at least one usable key. */
  readonly usable: number
  /** Why keys were skipped, counted by reason (for the keys.refreshed event). */
  readonly skipped: Record<string, number>
}

/** The algorithms a JWK may verify, intersected with the issuer's allowlist (RFC 7517 §4). */
function algorithmsFor(jwk: Record<string, unknown>, allowed: ReadonlySet<string>): string[] | string {
  // A JWKS key is only ever an asymmetric public key. HMAC secrets (kty "oct") published in a JWKS
  // are ignored: HS* is verified with the configured sharedSecret only, which is what makes the
  // RS256→HS256 confusion attack impossible (RFC 8725 §2.1).
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC' && jwk.kty !== 'OKP') return 'unsupported_kty'
  if (jwk.d !== undefined || jwk.p !== undefined) return 'private_key'
  // RFC 7517 §4.2 / §4.3: a key marked for encryption, or whose key_ops exclude verify, is not ours.
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'not_for_signing'
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return 'not_for_signing'
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return 'bad_kid'
  const fits = (alg: string) => {
    const spec = ASYMMETRIC_ALGS[alg]
    return spec !== undefined && spec.kty === jwk.kty && (spec.crv === undefined || spec.crv === jwk.crv)
  }
  let algs: string[]
  if (jwk.alg !== undefined) {
    // RFC 7517 §4.4: a key that names its algorithm is used with that algorithm only.
    if (typeof jwk.alg !== 'string' || !fits(jwk.alg)) return 'alg_mismatch'
    algs = [jwk.alg]
  } else {
    algs = Object.keys(ASYMMETRIC_ALGS).filter(fits)
  }
  algs = algs.filter((a) => allowed.has(a))
  return algs.length ? algs : 'alg_not_allowed'
}

function nodeKeyFor(keyObject: KeyObject, spec: AlgSpec): VerificationKey['nodeKey'] {
  if (spec.pssSalt !== undefined) return { key: keyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: spec.pssSalt }
  if (spec.p1363) return { key: keyObject, dsaEncoding: 'ieee-p1363' }
  return keyObject
}

/**
 * Imports every usable signing key of a JWKS with jose (one CryptoKey per key and algorithm) and
 * derives the node:crypto KeyObject from it, so both signature paths use the very same key.
 * Keys that cannot be used are skipped and counted, never fatal for the others.
 */
export async function importJwks(jwks: unknown, allowed: ReadonlySet<string>): Promise<ImportResult> {
  const keys: VerificationKey[] = []
  let usable = 0
  const skipped: Record<string, number> = {}
  const skip = (reason: string) => (skipped[reason] = (skipped[reason] ?? 0) + 1)
  const list = (jwks as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list)) throw new Error('JWKS has no "keys" array')
  for (const raw of list.slice(0, MAX_JWKS_KEYS)) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      skip('not_an_object')
      continue
    }
    const jwk = raw as Record<string, unknown>
    const algs = algorithmsFor(jwk, allowed)
    if (typeof algs === 'string') {
      skip(algs)
      continue
    }
    let keyObject: KeyObject | undefined
    const before = keys.length
    for (const alg of algs) {
      let cryptoKey: CryptoKey
      try {
        const imported = await importJWK({ ...(jwk as JWK), alg }, alg)
        if (imported instanceof Uint8Array) throw new Error('symmetric key')
        cryptoKey = imported
      } catch {
        skip('import_failed')
        break
      }
      keyObject ??= KeyObject.from(cryptoKey as unknown as webcrypto.CryptoKey)
      const spec = ASYMMETRIC_ALGS[alg]
      if (spec.kty === 'RSA' && (keyObject.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
        skip('rsa_too_short')
        break
      }
      keys.push({ kid: jwk.kid as string | undefined, alg, cryptoKey, nodeKey: nodeKeyFor(keyObject, spec), hash: spec.hash })
    }
    if (keys.length > before) usable++
  }
  if (list.length > MAX_JWKS_KEYS) skipped.over_limit = list.length - MAX_JWKS_KEYS
  return { keys, usable, skipped }
}
