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
      res.end(JSON.stringify({ issuer: ks.issuer, jwks_uri: ks.jwksUri }))
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
      const now = Math.floor(Date.now() / 1000)
      return new SignJWT({ iss: ks.issuer, aud: audience, sub: 'user-1', client_id: 'client-1', iat: now, exp: now + 300, scope: 'read', ...claims })
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
