import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose'

/**
 * The bench's identity provider: one RS256 key made at run time, a JWKS endpoint the gateway
 * loads at start-up, and token minting. Nothing here is on the measured path: the JWKS is fetched
 * once, and tokens are signed before any load is applied.
 */
export interface BenchIssuer {
  readonly issuer: string
  readonly jwksUri: string
  readonly audience: string
  readonly scope: string
  /** SPKI PEM of the public key, for stacks that verify with a static key (the Fastify row). */
  readonly publicKeyPem: string
  /** Signs `count` access tokens, each with its own jti; with `budgetMs`, stops once that much
   *  time has passed (after at least 1,000) and returns the tokens signed so far. */
  mint(count: number, label: string, budgetMs?: number): Promise<string[]>
  close(): Promise<void>
}

const KID = 'bench-rs256'
const LIFETIME_SEC = 30 * 60
/** Signatures in flight at once. jose signs through WebCrypto, whose jobs run on the libuv
 *  thread pool, so a modest number in flight keeps both cores busy without worker_threads. */
const IN_FLIGHT = 32

export async function startIssuer(options: { audience: string; scope: string }): Promise<BenchIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: KID, alg: 'RS256', use: 'sig' }
  const jwks = JSON.stringify({ keys: [jwk] })
  const server = createServer((req, res) => {
    if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' }).end(jwks)
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const publicKeyPem = await exportSPKI(publicKey)
  let serial = 0

  return {
    issuer: url,
    jwksUri: `${url}/jwks`,
    audience: options.audience,
    scope: options.scope,
    publicKeyPem,
    async mint(count, label, budgetMs = Infinity) {
      const now = Math.floor(Date.now() / 1000)
      const stopAt = performance.now() + budgetMs
      const out = new Array<string>(count)
      let next = 0
      const lane = async () => {
        while (next < count && (next < 1000 || performance.now() < stopAt)) {
          const i = next++
          out[i] = await sign(privateKey, {
            iss: url,
            aud: options.audience,
            sub: `bench-user-${i % 1000}`,
            client_id: 'bench-client',
            scope: options.scope,
            iat: now,
            exp: now + LIFETIME_SEC,
            // Distinct jti per token: a cold-cache request must never hit a cached verification.
            jti: `${label}-${process.pid}-${++serial}`,
          })
        }
      }
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, lane))
      out.length = next
      return out
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

function sign(key: CryptoKey, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'at+jwt' }).sign(key)
}
