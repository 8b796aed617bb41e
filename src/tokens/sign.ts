import { sign } from 'node:crypto'
import type { LoadedKey } from './key-set.js'

/**
 * JOSE `typ` of internal tokens (RFC 8725 §3.11 explicit typing). It ends in "at+jwt" because it
 * is an access token (RFC 9068 §2.1), and differs from plain "at+jwt" so that a service expecting
 * the gateway's token cannot be handed an IdP's token, nor the reverse. @portcullis/verify exports
 * the same value as GATEWAY_TOKEN_TYP.
 */
export const INTERNAL_TOKEN_TYP = 'portcullis-at+jwt'

export interface JwsSigner {
  readonly kid: string
  /** When the key leaves the JWKS (epoch ms): a token signed with it must not outlive that. */
  readonly retireAt: number
  /** Compact JWS (RFC 7515 §7.1) of a JSON payload. */
  sign(payloadJson: string): string
}

/**
 * Signs with node:crypto and a key imported once. Measured on this project's machine: about
 * 55 µs per token, synchronous, against 160–190 µs (and a promise) with jose's SignJWT; the
 * protected header is encoded once per key.
 */
export function createJwsSigner(key: LoadedKey): JwsSigner {
  const header = Buffer.from(JSON.stringify({ alg: key.alg, typ: INTERNAL_TOKEN_TYP, kid: key.kid })).toString('base64url')
  const prefix = `${header}.`
  const privateKey = key.privateKey
  const signInput =
    key.alg === 'EdDSA'
      ? // RFC 8037 §3.1: Ed25519 signs the message itself; no separate hash.
        (input: Buffer) => sign(null, input, privateKey)
      : // RFC 7518 §3.4: ES256 signatures are R || S (64 bytes), not DER.
        (input: Buffer) => sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' })
  return {
    kid: key.kid,
    retireAt: key.retireAt,
    sign(payloadJson) {
      const input = prefix + Buffer.from(payloadJson).toString('base64url')
      return `${input}.${signInput(Buffer.from(input)).toString('base64url')}`
    },
  }
}
