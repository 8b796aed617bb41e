import { constants, createHmac, KeyObject, sign as cryptoSign, type webcrypto } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey, type JWTPayload } from 'jose'

export interface TestKey {
  readonly kid: string
  readonly alg: string
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

export interface KeyServer {
  /** Base URL; also the issuer (`iss`). */
  readonly url: string
  readonly issuer: string
  readonly jwksUri: string
  readonly discoveryUrl: string
  /** Paths requested from this server, in order. */
  readonly requests: string[]
  /** Keys currently published in the JWKS. */
  readonly keys: TestKey[]
  /** Generates a key and, unless publish is false, publishes it in the JWKS. */
  addKey(alg?: string, options?: { publish?: boolean; kid?: string }): Promise<TestKey>
  /** Signs an access token with the first published key (or the given one). Defaults: iss, aud, sub, iat, exp (+5 min), scope. */
  sign(claims?: JWTPayload, options?: { key?: TestKey; header?: Record<string, unknown>; typ?: string }): Promise<string>
  /** Extra response headers for the JWKS (e.g. cache-control). */
  jwksHeaders: Record<string, string>
  /** When true the server answers 503 to everything (an IdP outage). */
  down: boolean
  /** Extra members merged into the discovery document (e.g. a different `issuer`). */
  discoveryOverrides: Record<string, unknown>
  /** Default claims of sign()/signRaw() (iss, aud, sub, client_id, iat, exp = now + 300, scope), at the current time. */
  defaultClaims(): Record<string, unknown>
  /**
   * Signs exactly the given header and payload with a key's private key (no defaults, no checks),
   * for hand-crafted attack tokens: crit headers, missing exp, embedded jwk, ...
   */
  signRaw(header: Record<string, unknown>, payload: Record<string, unknown>, key?: TestKey): string
  close(): Promise<void>
}

let counter = 0

/** A minimal OIDC-shaped key server of the tests' own: discovery + JWKS, keys made with jose at run time. */
export async function startKeyServer(options: { audience?: string; alg?: string } = {}): Promise<KeyServer> {
  const audience = options.audience ?? 'api://test'
  const requests: string[] = []
  const keys: TestKey[] = []
  const server = createServer((req, res) => {
    requests.push(req.url ?? '')
    if (ks.down) {
      res.writeHead(503).end()
      return
    }
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ issuer: ks.issuer, jwks_uri: ks.jwksUri, ...ks.discoveryOverrides }))
    } else if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json', ...ks.jwksHeaders })
      res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const ks: KeyServer = {
    url,
    issuer: url,
    jwksUri: `${url}/jwks`,
    discoveryUrl: `${url}/.well-known/openid-configuration`,
    requests,
    keys,
    jwksHeaders: {},
    down: false,
    discoveryOverrides: {},
    defaultClaims() {
      const now = Math.floor(Date.now() / 1000)
      return { iss: ks.issuer, aud: audience, sub: 'user-1', client_id: 'client-1', iat: now, exp: now + 300, scope: 'read' }
    },
    signRaw(header, payload, key = keys[0]) {
      return signCompact(header, payload, key.alg, KeyObject.from(key.privateKey as unknown as webcrypto.CryptoKey))
    },
    async addKey(alg = options.alg ?? 'RS256', opts = {}) {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
      const kid = opts.kid ?? `k${++counter}-${alg}`
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
      const key = { kid, alg, privateKey, publicJwk }
      if (opts.publish ?? true) keys.push(key)
      return key
    },
    async sign(claims = {}, opts = {}) {
      const key = opts.key ?? keys[0]
      return new SignJWT({ ...ks.defaultClaims(), ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: opts.typ ?? 'at+jwt', ...opts.header })
        .sign(key.privateKey)
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
  await ks.addKey()
  return ks
}

/** base64url of a JSON value, as in a JWS header or payload segment. */
export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** An unsecured JWS (RFC 7515 Appendix A.5 style): header.payload. with an empty signature. */
export function unsignedToken(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64json(header)}.${b64json(payload)}.`
}

/**
 * Signs header.payload with node:crypto. `key` is a private KeyObject for RS/PS/ES/EdDSA, or raw
 * bytes for HS* (which lets a test sign with, say, a public key's PEM text as the HMAC secret).
 */
export function signCompact(header: Record<string, unknown>, payload: Record<string, unknown>, alg: string, key: KeyObject | Uint8Array): string {
  const input = `${b64json(header)}.${b64json(payload)}`
  const bits = alg.slice(2)
  let sig: Buffer
  if (alg.startsWith('HS')) {
    sig = createHmac(`sha${bits}`, key as Uint8Array).update(input).digest()
  } else if (alg === 'EdDSA') {
    sig = cryptoSign(null, Buffer.from(input), key as KeyObject)
  } else if (alg.startsWith('PS')) {
    sig = cryptoSign(`sha${bits}`, Buffer.from(input), { key: key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8 })
  } else if (alg.startsWith('ES')) {
    sig = cryptoSign(`sha${bits}`, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' })
  } else {
    sig = cryptoSign(`sha${bits}`, Buffer.from(input), key as KeyObject)
  }
  return `${input}.${sig.toString('base64url')}`
}

/** A JWKS endpoint for `ks`'s keys that answers only once released: a reload that needs it waits. */
export interface HeldJwks {
  readonly url: string
  /** Resolves when the first request for the keys arrived. */
  readonly asked: Promise<void>
  /** Lets every request waiting (and every later one) get the keys. */
  release(): void
  close(): void
}

export async function startHeldJwks(ks: KeyServer): Promise<HeldJwks> {
  let jwksAsked!: () => void
  const asked = new Promise<void>((r) => (jwksAsked = r))
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  const server = createServer((_req, res) => {
    jwksAsked()
    void released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: ks.keys.map((k) => k.publicJwk) })))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    asked,
    release,
    close() {
      release()
      server.closeAllConnections()
      server.close()
    },
  }
}
