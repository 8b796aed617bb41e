import { createHmac, timingSafeEqual, verify as cryptoVerify } from 'node:crypto'
import { compactVerify, errors } from 'jose'
import { HMAC_HASH, type VerificationKey } from './jwk-import.js'
import type { ParsedJwt } from './jwt-parse.js'
import { invalidToken } from './reject.js'
import { batchedVerifier } from './verify-batch.js'

/** The configured shared secret of an issuer, for HS* only (RFC 7518 §3.2). */
export interface HmacKey {
  readonly alg: string
  readonly secret: Buffer
}

export type SigningKey = VerificationKey | HmacKey

const isHmac = (key: SigningKey): key is HmacKey => 'secret' in key

/**
 * Checks a JWS signature against one key, whose algorithm equals the token's `alg` (the caller
 * selected it). Returns false for a signature that does not verify; header rules and claims are
 * not this module's job (see claims.ts, shared by both implementations).
 */
export type SignatureVerifier = (jwt: ParsedJwt, key: SigningKey) => boolean | Promise<boolean>

/**
 * Fast path: node:crypto.verify with KeyObjects imported once per JWKS load. Synchronous; the
 * gateway runs it through verifyWithNodeCryptoBatched.
 */
export const verifyWithNodeCrypto = (jwt: ParsedJwt, key: SigningKey): boolean => {
  if (isHmac(key)) {
    const mac = createHmac(HMAC_HASH[key.alg], key.secret).update(jwt.signingInput).digest()
    // Constant-time comparison: a byte-by-byte compare would leak how much of a forged MAC is right.
    return mac.length === jwt.signature.length && timingSafeEqual(mac, jwt.signature)
  }
  try {
    return cryptoVerify(key.hash, Buffer.from(jwt.signingInput, 'latin1'), key.nodeKey, jwt.signature)
  } catch {
    // OpenSSL errors on garbage signatures (e.g. an RSA signature longer than the modulus).
    return false
  }
}

/**
 * Reference path: jose.compactVerify with the same key set. It re-parses the token, checks the
 * algorithm again and uses WebCrypto. Slower (async, more allocation) but independent of our
 * node:crypto parameter table.
 */
export const verifyWithJose: SignatureVerifier = async (jwt, key) => {
  const alg = jwt.header.alg as string
  try {
    await compactVerify(jwt.token, isHmac(key) ? key.secret : key.cryptoKey, { algorithms: [alg] })
    return true
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed) return false
    // Anything else jose refuses (it should not reach here, claims.ts checked the header first)
    // is a token we do not accept either.
    throw invalidToken('malformed')
  }
}

const batchedNodeCrypto = batchedVerifier(verifyWithNodeCrypto)

/**
 * The `node-crypto` path as the gateway runs it: public-key signatures are checked in batches at
 * the end of the event loop's I/O phase (verify-batch.ts explains why); an HMAC, which costs a
 * fraction of that, is checked at once.
 */
export const verifyWithNodeCryptoBatched: SignatureVerifier = (jwt, key) =>
  isHmac(key) ? verifyWithNodeCrypto(jwt, key) : batchedNodeCrypto(jwt, key)

/**
 * The verifier of an issuer's `verifier` setting. PORTCULLIS_VERIFY_IN_PLACE=1 checks node:crypto
 * signatures where the request is, unbatched: a diagnostic switch for the benchmark's ablation row,
 * read when a config is loaded; the answers are the same either way.
 */
export function signatureVerifier(kind: 'node-crypto' | 'jose'): SignatureVerifier {
  if (kind === 'jose') return verifyWithJose
  return process.env.PORTCULLIS_VERIFY_IN_PLACE === '1' ? verifyWithNodeCrypto : verifyWithNodeCryptoBatched
}
