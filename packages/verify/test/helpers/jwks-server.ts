import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import type { AttackContext, AttackKey } from '../fixtures/attack-tokens.js'
import { signValid } from '../fixtures/attack-tokens.js'

export interface TestKey extends AttackKey {
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

/**
 * An issuer of the tests' own: OIDC discovery + JWKS over real HTTP, keys generated with jose at
 * run time. Records every request path; can be taken down (503), made to hang, or to serve an
 * oversized JWKS.
 */
export interface JwksServer {
  /** Base URL; also the issuer (`iss`). */
  readonly url: string
  readonly issuer: string
  readonly jwksUri: string
  readonly discoveryUrl: string
  /** Paths requested, in order. */
  readonly requests: string[]
  /** Keys currently published. */
  readonly keys: TestKey[]
  /** Generates a key; publishes it unless `publish` is false. */
  addKey(alg?: string, options?: { publish?: boolean; kid?: string }): Promise<TestKey>
  /** Unpublishes a key (rotation: the old key leaves the JWKS). */
  removeKey(kid: string): void
  /** 'up', 'down' (503), 'hang' (never answers), or 'huge' (a JWKS over the size cap). */
  mode: 'up' | 'down' | 'hang' | 'huge'
  /** Members merged into the discovery document (e.g. another issuer). */
  discoveryOverrides: Record<string, unknown>
  /** How many JWKS fetches so far. */
  jwksFetches(): number
  /** Attack-fixture context for this issuer's first key. */
  context(extra: Partial<AttackContext> & { audience: string; typ: string; trapUrl: string }): AttackContext
  /** A valid token signed with `key` (default: the first published key). */
  sign(ctx: { audience: string; typ: string }, claims?: Record<string, unknown>, options?: { key?: TestKey; header?: Record<string, unknown> }): string
  close(): Promise<void>
}

let counter = 0

export async function startJwksServer(options: { alg?: string } = {}): Promise<JwksServer> {
  const defaultAlg = options.alg ?? 'RS256'
  const requests: string[] = []
  const keys: TestKey[] = []
  const hanging = new Set<import('node:http').ServerResponse>()
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '')
    if (js.mode === 'down') return void res.writeHead(503).end()
    if (js.mode === 'hang') return void hanging.add(res)
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ issuer: js.issuer, jwks_uri: js.jwksUri, ...js.discoveryOverrides }))
    } else if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' })
      if (js.mode === 'huge') res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk), pad: 'x'.repeat(600 * 1024) }))
      else res.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const js: JwksServer = {
    url,
    issuer: url,
    jwksUri: `${url}/jwks`,
    discoveryUrl: `${url}/.well-known/openid-configuration`,
    requests,
    keys,
    mode: 'up',
    discoveryOverrides: {},
    jwksFetches: () => requests.filter((p) => p === '/jwks').length,
    async addKey(alg = defaultAlg, opts = {}) {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
      const kid = opts.kid ?? `k${++counter}-${alg}`
      const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
      const key: TestKey = { kid, alg, privateKey, publicJwk }
      if (opts.publish ?? true) keys.push(key)
      return key
    },
    removeKey(kid) {
      const i = keys.findIndex((k) => k.kid === kid)
      if (i !== -1) keys.splice(i, 1)
    },
    context(extra) {
      return { issuer: js.issuer, key: keys[0], ...extra }
    },
    sign(ctx, claims = {}, opts = {}) {
      const key = opts.key ?? keys[0]
      return signValid({ issuer: js.issuer, audience: ctx.audience, typ: ctx.typ, key, trapUrl: '' }, claims, opts.header)
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of hanging) res.destroy()
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
  await js.addKey()
  return js
}

/** A server that must never be contacted: what forged jku/x5u headers point at. */
export interface Trap {
  readonly url: string
  readonly hits: string[]
  close(): Promise<void>
}

export async function startTrap(): Promise<Trap> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url ?? '')
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
