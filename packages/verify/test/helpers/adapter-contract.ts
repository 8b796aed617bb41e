import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createVerifier, type Identity, type Verifier } from '@portcullis/verify'
import { garble } from '../fixtures/attack-tokens.js'
import { startJwksServer, type JwksServer } from './jwks-server.js'

export const AUDIENCE = 'api://orders'
export const TYP = 'at+jwt'
export const REALM = 'orders'

/** A running app built with one adapter, on a real socket. */
export interface StartedApp {
  readonly url: string
  /** How many times the protected handler ran. */
  handled(): number
  close(): Promise<void>
}

/**
 * What every adapter must do, over real sockets. The app under test protects `GET /orders` with
 * scope `orders:read` and answers 200 with `{ subject, clientId, scopes }` read from the identity
 * its handler was given.
 */
export type StartApp = (verifier: Verifier) => Promise<StartedApp>

export interface Answer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Record<string, unknown>
}

/** node:http rather than fetch, so a header can be sent twice. */
export function send(url: string, headers: Record<string, string | string[]> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => (text += c))
      res.on('end', () => {
        let body: Record<string, unknown>
        try {
          body = JSON.parse(text) as Record<string, unknown>
        } catch {
          body = { raw: text }
        }
        resolve({ status: res.statusCode!, headers: res.headers, body })
      })
    })
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

/**
 * Serves a node request listener (an Express app is one too) on a free local port. `counter.n` is
 * what {@link StartedApp.handled} reports.
 */
export async function listen(listener: RequestListener, counter: { n: number }): Promise<StartedApp> {
  const server = createServer(listener)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handled: () => counter.n,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

/** The body the contract's `GET /orders` handler answers with. */
export const describeIdentity = (identity: Identity) => ({ subject: identity.subject, clientId: identity.clientId, scopes: [...identity.scopes] })

/** A verifier that accepts any token, as an identity holding just `scopes`. */
export function stubVerifier(scopes: readonly string[] = []): Verifier {
  return { issuer: 'x', realm: 'r', verify: async () => ({ scopes: new Set<string>(scopes) }) as unknown as Identity, warmUp: async () => {} }
}

export function adapterContract(name: string, start: StartApp): void {
  describe(`${name} adapter`, () => {
    let js: JwksServer
    let app: StartedApp
    const sign = (claims: Record<string, unknown> = {}) => js.sign({ audience: AUDIENCE, typ: TYP }, { scope: 'orders:read', ...claims })

    before(async () => {
      js = await startJwksServer({ alg: 'ES256' })
      app = await start(createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, requiredTyp: TYP, realm: REALM }))
    })
    after(async () => {
      await app?.close()
      await js?.close()
    })

    /** A refusal: status, problem+json, code, the exact challenge, and the handler never ran. */
    async function refused(headers: Record<string, string | string[]>, status: number, code: string, challenge: string | undefined, path = '/orders') {
      const before = app.handled()
      const res = await send(app.url + path, headers)
      assert.equal(res.status, status)
      assert.equal(res.headers['content-type'], 'application/problem+json')
      assert.equal(res.body.code, code)
      assert.equal(res.body.status, status)
      assert.equal(res.headers['www-authenticate'], challenge)
      assert.equal(res.headers['cache-control'], 'no-store')
      assert.equal(app.handled(), before, 'the handler did not run')
      return res
    }

    test('a request without a token gets 401 ERR_AUTHN_MISSING with a Bearer challenge naming the realm and no error', async () => {
      await refused({}, 401, 'ERR_AUTHN_MISSING', `Bearer realm="${REALM}"`)
    })

    test('credentials of another scheme count as no token', async () => {
      await refused({ authorization: 'Basic dXNlcjpwYXNz' }, 401, 'ERR_AUTHN_MISSING', `Bearer realm="${REALM}"`)
    })

    test('an invalid token gets 401 ERR_AUTHN_INVALID_TOKEN with error="invalid_token"', async () => {
      const garbled = garble(sign())
      const res = await refused({ authorization: `Bearer ${garbled}` }, 401, 'ERR_AUTHN_INVALID_TOKEN', `Bearer realm="${REALM}", error="invalid_token"`)
      assert.equal(JSON.stringify(res.body).includes(garbled.slice(0, 20)), false, 'the token is not echoed')
    })

    test('an expired token gets 401 ERR_AUTHN_EXPIRED with error="invalid_token"', async () => {
      const now = Math.floor(Date.now() / 1000)
      await refused({ authorization: `Bearer ${sign({ iat: now - 600, exp: now - 300 })}` }, 401, 'ERR_AUTHN_EXPIRED', `Bearer realm="${REALM}", error="invalid_token"`)
    })

    test('a valid token without the required scope gets 403 ERR_AUTHZ_INSUFFICIENT_SCOPE naming the scope', async () => {
      await refused({ authorization: `Bearer ${sign({ scope: 'orders:write' })}` }, 403, 'ERR_AUTHZ_INSUFFICIENT_SCOPE', `Bearer realm="${REALM}", error="insufficient_scope", scope="orders:read"`)
    })

    test('a token in the query string gets 400 ERR_AUTHN_MALFORMED with error="invalid_request", even with a good header', async () => {
      const token = sign()
      await refused({ authorization: `Bearer ${token}` }, 400, 'ERR_AUTHN_MALFORMED', `Bearer realm="${REALM}", error="invalid_request"`, `/orders?access_token=${token}`)
    })

    test('two Authorization headers get 400 ERR_AUTHN_MALFORMED even when both are valid', async () => {
      const token = sign()
      await refused({ authorization: [`Bearer ${token}`, `Bearer ${token}`] }, 400, 'ERR_AUTHN_MALFORMED', `Bearer realm="${REALM}", error="invalid_request"`)
    })

    test('a valid token with the scope reaches the handler, which sees the identity', async () => {
      const before = app.handled()
      const res = await send(app.url + '/orders', { authorization: `Bearer ${sign({ sub: 'alice', scope: 'orders:read orders:write' })}` })
      assert.equal(res.status, 200, JSON.stringify(res.body))
      assert.deepEqual(res.body, { subject: 'alice', clientId: 'client-1', scopes: ['orders:read', 'orders:write'] })
      assert.equal(app.handled(), before + 1)
    })
  })
}
