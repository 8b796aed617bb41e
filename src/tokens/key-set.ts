import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto'

/**
 * The signing key set file: the gateway's private keys for internal tokens, written by
 * `portcullis keys generate` and `portcullis keys rotate-signing` (mode 0600), read by the gateway
 * through internalTokens.signingKeys. Its format:
 *
 *   { "kind": "portcullis-signing-keys", "version": 1, "keys": [
 *       { "kid", "alg", "state": "current", "createdAt", "activateAt"?, "privateJwk" },
 *       { "kid", "alg", "state": "previous", "createdAt", "retireAt", "privateJwk" } ] }
 *
 * Exactly one key is `current`: it signs from `activateAt` (immediately when absent). Until then
 * the newest `previous` key still signs. A `previous` key stays published until `retireAt`, so
 * tokens signed before a rotation keep verifying during the overlap; after it they do not.
 *
 * Nothing in this module puts key material into an error message.
 */
export const KEY_SET_KIND = 'portcullis-signing-keys'
export const KEY_SET_VERSION = 1
export type KeyAlg = 'EdDSA' | 'ES256'
export const KEY_ALGS: readonly KeyAlg[] = ['EdDSA', 'ES256']

export interface KeyEntry {
  readonly kid: string
  readonly alg: KeyAlg
  readonly state: 'current' | 'previous'
  readonly createdAt: string
  /** current only: signing starts then (publication starts at once). */
  readonly activateAt?: string
  /** previous only: dropped from the JWKS then. */
  readonly retireAt?: string
  readonly privateJwk: JsonWebKey
}

export interface KeySetDocument {
  readonly kind: typeof KEY_SET_KIND
  readonly version: typeof KEY_SET_VERSION
  readonly keys: readonly KeyEntry[]
}

/** A key ready to use: imported once. Times in epoch ms. */
export interface LoadedKey {
  readonly kid: string
  readonly alg: KeyAlg
  readonly state: 'current' | 'previous'
  readonly createdAt: number
  /** When it starts signing (current); 0 = already. */
  readonly activateAt: number
  /** When it leaves the JWKS (previous); Infinity for the current key. */
  readonly retireAt: number
  readonly privateKey: KeyObject
  /** Public JWK as published: kty, crv, x(, y), kid, alg, use. */
  readonly publicJwk: Readonly<Record<string, string>>
}

export class KeySetError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'KeySetError'
  }
}

const KID = /^[A-Za-z0-9_.:-]{1,128}$/
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** The key type each algorithm signs with (RFC 8037 §2 for Ed25519, RFC 7518 §3.4 for P-256). */
const KEY_SHAPE: Record<KeyAlg, { kty: string; crv: string }> = {
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  ES256: { kty: 'EC', crv: 'P-256' },
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key: a kid anyone can recompute. */
export function jwkThumbprint(jwk: JsonWebKey): string {
  // Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

/** A new key pair of `alg`, as a key-set entry (state current, active now). */
export function generateKeyEntry(alg: KeyAlg, nowMs: number, activateAtMs?: number): KeyEntry {
  const { privateKey } = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const privateJwk = privateKey.export({ format: 'jwk' })
  const entry: KeyEntry = {
    kid: jwkThumbprint(privateJwk),
    alg,
    state: 'current',
    createdAt: new Date(nowMs).toISOString(),
    ...(activateAtMs !== undefined && activateAtMs > nowMs ? { activateAt: new Date(activateAtMs).toISOString() } : {}),
    privateJwk,
  }
  return entry
}

export function newKeySet(alg: KeyAlg, nowMs: number): KeySetDocument {
  return { kind: KEY_SET_KIND, version: KEY_SET_VERSION, keys: [generateKeyEntry(alg, nowMs)] }
}

export interface RotateOptions {
  readonly alg?: KeyAlg
  /** How long the replaced key stays published after the new one starts signing, in seconds. */
  readonly overlapSec: number
  /** How long the new key is published before it starts signing, in seconds. */
  readonly publishAheadSec: number
  readonly nowMs: number
}

/**
 * A rotation: a new current key (same alg unless given), active after `publishAheadSec`; the old
 * current key becomes `previous`, retired `overlapSec` after the new key activates. Older previous
 * keys retire no later than that either: the overlap is how long tokens of the keys before the new
 * one may still need checking, and one of them may have been the signer (when the replaced key had
 * not activated yet). So an emergency rotation (`publishAheadSec` and `overlapSec` 0, a key
 * compromised) takes every earlier key out of the JWKS at once. Previous keys retired by then are
 * dropped from the file. The input is not changed.
 */
export function rotateKeySet(set: KeySetDocument, options: RotateOptions): { set: KeySetDocument; added: KeyEntry; retiring: KeyEntry } {
  const { nowMs } = options
  const current = set.keys.find((k) => k.state === 'current')
  if (current === undefined) throw new KeySetError('the key set has no current key')
  const activateAt = nowMs + options.publishAheadSec * 1000
  const added = generateKeyEntry(options.alg ?? current.alg, nowMs, activateAt)
  const retiring: KeyEntry = {
    kid: current.kid,
    alg: current.alg,
    state: 'previous',
    createdAt: current.createdAt,
    retireAt: new Date(activateAt + options.overlapSec * 1000).toISOString(),
    privateJwk: current.privateJwk,
  }
  const retireBy = Date.parse(retiring.retireAt!)
  const stillPublished = set.keys
    .filter((k) => k.state === 'previous' && k.retireAt !== undefined)
    .map((k) => (Date.parse(k.retireAt!) > retireBy ? { ...k, retireAt: retiring.retireAt } : k))
    .filter((k) => Date.parse(k.retireAt!) > nowMs)
  return { set: { kind: KEY_SET_KIND, version: KEY_SET_VERSION, keys: [added, retiring, ...stillPublished] }, added, retiring }
}

export function serializeKeySet(set: KeySetDocument): string {
  return `${JSON.stringify(set, null, 2)}\n`
}

function time(value: unknown, what: string): number {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN
  if (!Number.isFinite(ms)) throw new KeySetError(`${what} is not an ISO 8601 date`)
  return ms
}

/**
 * Parses and checks a key set (its text), imports every private key once and derives its public
 * JWK. Throws KeySetError with a message that names the key by index and kid, never its material.
 */
export function parseKeySet(text: string): { document: KeySetDocument; keys: LoadedKey[] } {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new KeySetError('is not JSON (expected the file written by "portcullis keys generate")')
  }
  if (!isObject(doc) || doc.kind !== KEY_SET_KIND) throw new KeySetError(`is not a signing key set (expected "kind": "${KEY_SET_KIND}")`)
  if (doc.version !== KEY_SET_VERSION) throw new KeySetError(`has unsupported version ${JSON.stringify(doc.version)} (expected ${KEY_SET_VERSION})`)
  if (!Array.isArray(doc.keys) || doc.keys.length === 0) throw new KeySetError('has no keys')
  const seen = new Set<string>()
  const keys: LoadedKey[] = []
  doc.keys.forEach((raw: unknown, i: number) => {
    const where = `keys[${i}]`
    if (!isObject(raw)) throw new KeySetError(`${where} is not an object`)
    const kid = raw.kid
    if (typeof kid !== 'string' || !KID.test(kid)) throw new KeySetError(`${where}.kid must be 1 to 128 characters of [A-Za-z0-9_.:-]`)
    const name = `${where} (kid ${kid})`
    if (seen.has(kid)) throw new KeySetError(`${name}: duplicate kid`)
    seen.add(kid)
    const alg = raw.alg as KeyAlg
    if (!KEY_ALGS.includes(alg)) throw new KeySetError(`${name}: alg must be one of ${KEY_ALGS.join(', ')}`)
    if (raw.state !== 'current' && raw.state !== 'previous') throw new KeySetError(`${name}: state must be "current" or "previous"`)
    const createdAt = time(raw.createdAt, `${name}.createdAt`)
    const activateAt = raw.activateAt === undefined ? 0 : time(raw.activateAt, `${name}.activateAt`)
    if (raw.state === 'previous' && raw.activateAt !== undefined) throw new KeySetError(`${name}: activateAt is only for the current key`)
    let retireAt = Infinity
    if (raw.state === 'previous') retireAt = time(raw.retireAt, `${name}.retireAt`)
    else if (raw.retireAt !== undefined) throw new KeySetError(`${name}: the current key cannot have retireAt`)
    const jwk = raw.privateJwk
    const shape = KEY_SHAPE[alg]
    if (!isObject(jwk) || jwk.kty !== shape.kty || jwk.crv !== shape.crv) throw new KeySetError(`${name}: privateJwk must be a ${shape.kty} ${shape.crv} key for ${alg}`)
    if (typeof jwk.d !== 'string') throw new KeySetError(`${name}: privateJwk has no private part ("d")`)
    let privateKey: KeyObject
    try {
      privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
    } catch {
      throw new KeySetError(`${name}: privateJwk cannot be imported`)
    }
    const pub = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>
    // Only the public members are published, whatever else the file holds (RFC 7517 §4).
    const publicJwk = Object.freeze({
      kty: pub.kty,
      crv: pub.crv,
      x: pub.x,
      ...(pub.y !== undefined ? { y: pub.y } : {}),
      kid,
      alg,
      use: 'sig',
    })
    keys.push(Object.freeze({ kid, alg, state: raw.state, createdAt, activateAt, retireAt, privateKey, publicJwk }))
  })
  const current = keys.filter((k) => k.state === 'current')
  if (current.length !== 1) throw new KeySetError(`must have exactly one key with state "current" (found ${current.length})`)
  return { document: doc as unknown as KeySetDocument, keys }
}
