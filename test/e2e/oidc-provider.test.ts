import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeProtectedHeader } from 'jose'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startOidcProvider, type StartedOidcProvider } from '../helpers/oidc.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * The gateway against a real OpenID Provider: it finds the keys through discovery and accepts the
 * RFC 9068 access tokens the provider issues, on both signature paths.
 */
for (const verifier of ['node-crypto', 'jose'] as const) {
  describe(`tokens issued by oidc-provider, ${verifier} signature path`, () => {
    let op: StartedOidcProvider
    let up: RecordingUpstream
    let gw: StartedGateway

    before(async () => {
      op = await startOidcProvider({
        scopes: ['orders:read', 'admin'],
        audience: 'api://orders',
        clients: [{ clientId: 'orders-svc', clientSecret: 'orders-svc-secret-0123456789', scope: 'orders:read' }],
      })
      up = await startUpstream()
      gw = await startGateway(
        baseConfig({
          issuers: [{ id: 'op', discoveryUrl: op.discoveryUrl, audiences: ['api://orders'], requiredTyp: 'at+jwt', verifier }],
          upstreams: [{ id: 'orders', url: up.url }],
          routes: [
            { id: 'orders', path: '/orders/**', methods: ['GET'], upstream: 'orders', auth: 'required', scopes: { allOf: ['orders:read'] } },
            { id: 'admin', path: '/admin/**', methods: ['GET'], upstream: 'orders', auth: 'required', scopes: { allOf: ['admin'] } },
          ],
        }),
      )
    })

    after(async () => {
      await gw?.stop()
      await up?.close()
      await op?.close()
    })

    test('the provider issues at+jwt access tokens signed with its published key', async () => {
      const header = decodeProtectedHeader(await op.getToken())
      assert.equal(header.typ, 'at+jwt')
      assert.equal(header.alg, 'RS256')
    })

    test('a client_credentials token with the right scope is accepted and the request reaches the upstream', async () => {
      const token = await op.getToken({ scope: 'orders:read' })
      const res = await fetch(gw.url + '/orders/42', { headers: { authorization: `Bearer ${token}` } })
      assert.equal(res.status, 200)
      assert.equal(up.received.length, 1)
      assert.equal(up.received[0].url, '/orders/42')
    })

    test('the same token on a route needing another scope gets 403 with an insufficient_scope challenge', async () => {
      const token = await op.getToken({ scope: 'orders:read' })
      const before = up.received.length
      const res = await fetch(gw.url + '/admin/users', { headers: { authorization: `Bearer ${token}` } })
      assert.equal(res.status, 403)
      assert.equal(res.headers.get('content-type'), 'application/problem+json')
      assert.equal(((await res.json()) as { code: string }).code, 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
      const challenge = res.headers.get('www-authenticate') ?? ''
      assert.match(challenge, /^Bearer /)
      assert.match(challenge, /error="insufficient_scope"/)
      assert.match(challenge, /scope="admin"/)
      assert.equal(up.received.length, before)
    })

    test('a request without a token gets 401 ERR_AUTHN_MISSING', async () => {
      const before = up.received.length
      const res = await fetch(gw.url + '/orders/42')
      assert.equal(res.status, 401)
      assert.equal(((await res.json()) as { code: string }).code, 'ERR_AUTHN_MISSING')
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="[^"]*"$/)
      assert.equal(up.received.length, before)
    })

    test('the keys were found through the discovery document', async () => {
      const refreshed = await gw.waitFor((l) => l.name === 'security' && l.event === 'keys.refreshed')
      assert.equal(refreshed.issuer, 'op')
      assert.deepEqual(refreshed.kids, ['op-rs256'])
    })
  })
}
