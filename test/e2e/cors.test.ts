import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { send } from '../helpers/limits.js'

/**
 * CORS on a route, as a browser page on another origin meets it: the preflight answered by the
 * gateway before any credential is asked for, the CORS fields on the upstream's answers and on the
 * gateway's own refusals, and the upstream's own Access-Control-* fields replaced.
 */

const AUD = 'api://shop'
const APP = 'https://app.example.com'

describe('CORS', () => {
  let ks: KeyServer
  let upstream: RecordingUpstream
  let gw: StartedGateway
  /** What reached the upstream. */
  const seen = () => upstream.received
  let token = ''

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    // An upstream with a CORS opinion of its own, which the gateway must not relay on a CORS route.
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true' }).end('{"ok":true}')
    })
    const upUrl = upstream.url
    gw = await startGateway(
      baseConfig({
        issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
        upstreams: [{ id: 'shop', url: upUrl }],
        routes: [
          {
            id: 'orders',
            path: '/orders/**',
            methods: ['GET', 'POST'],
            upstream: 'shop',
            auth: 'required',
            scopes: { allOf: ['orders'] },
            cors: { allowOrigins: [APP], allowCredentials: true, exposeHeaders: ['x-request-id'] },
          },
          { id: 'plain', path: '/plain/**', methods: ['GET'], upstream: 'shop', auth: 'public' },
        ],
        limits: { bruteForce: { enabled: false } },
      }),
    )
    token = await ks.sign({ scope: 'orders', sub: 'alice' })
  })

  after(async () => {
    await gw?.stop()
    await upstream?.close()
    await ks?.close()
  })

  const preflight = (path: string, origin: string, method: string, headers?: string) =>
    send(gw.url, path, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': method, ...(headers === undefined ? {} : { 'access-control-request-headers': headers }) },
    })

  test('the preflight of an allowed origin is answered by the gateway, with no credential and without the upstream', async () => {
    const before = seen().length
    const r = await preflight('/orders/42', APP, 'POST', 'authorization, content-type')
    assert.equal(r.status, 204)
    assert.equal(r.headers['access-control-allow-origin'], APP)
    assert.equal(r.headers['access-control-allow-methods'], 'GET, POST, HEAD')
    assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type')
    assert.equal(r.headers['access-control-allow-credentials'], 'true')
    assert.equal(r.headers['access-control-max-age'], '600')
    assert.match(String(r.headers.vary), /Origin/)
    assert.equal(seen().length, before, 'the upstream saw nothing')
    const line = await gw.waitFor((l) => l.name === 'access' && l.requestId === r.headers['x-request-id'])
    assert.equal(line.status, 204)
    assert.equal(line.route, 'orders')
  })

  test('a preflight from another origin, or asking for a header the route does not allow, is refused with an event', async () => {
    const evil = await preflight('/orders/42', 'https://evil.example', 'GET')
    assert.equal(evil.status, 403)
    assert.equal(evil.body.code, 'ERR_ROUTE_CORS_REJECTED')
    assert.equal(evil.headers['access-control-allow-origin'], undefined)
    const event = await gw.waitFor((l) => l.event === 'route.cors_rejected' && l.requestId === evil.headers['x-request-id'])
    assert.equal(event.reason, 'origin')
    assert.equal(event.route, 'orders')

    const header = await preflight('/orders/42', APP, 'GET', 'authorization, x-tenant')
    assert.equal(header.status, 403)
    await gw.waitFor((l) => l.event === 'route.cors_rejected' && l.reason === 'header')
    // A method the route does not take: no CORS route answers it, so it is the route's 405.
    const method = await preflight('/orders/42', APP, 'DELETE')
    assert.equal(method.status, 405)
  })

  test("an allowed origin's request gets the gateway's CORS fields in place of the upstream's", async () => {
    const r = await send(gw.url, '/orders/42', { headers: { origin: APP, authorization: `Bearer ${token}` } })
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-origin'], APP, 'not the upstream\'s "*"')
    assert.equal(r.headers['access-control-allow-credentials'], 'true')
    assert.equal(r.headers['access-control-expose-headers'], 'x-request-id')
    assert.match(String(r.headers.vary), /Origin/)
    assert.equal(seen().at(-1)?.headers.origin, APP, 'the upstream still sees the Origin')
  })

  test('a refusal carries the CORS fields too, so the page can read its problem', async () => {
    const r = await send(gw.url, '/orders/42', { headers: { origin: APP } })
    assert.equal(r.status, 401)
    assert.equal(r.body.code, 'ERR_AUTHN_MISSING')
    assert.equal(r.headers['access-control-allow-origin'], APP)
    assert.equal(r.headers['access-control-expose-headers'], 'x-request-id')
  })

  test('another origin gets no CORS fields at all, not even the upstream\'s', async () => {
    const r = await send(gw.url, '/orders/42', { headers: { origin: 'https://evil.example', authorization: `Bearer ${token}` } })
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-origin'], undefined)
    assert.equal(r.headers['access-control-allow-credentials'], undefined)
  })

  test('a route without cors is as before: its preflight is a 405, its answers keep what the upstream said', async () => {
    const r = await preflight('/plain/x', APP, 'GET')
    assert.equal(r.status, 405)
    const plain = await send(gw.url, '/plain/x', { headers: { origin: APP } })
    assert.equal(plain.headers['access-control-allow-origin'], '*')
  })
})
