import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect as h2connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, send, type Reply } from '../helpers/limits.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Host-based routing over real sockets: the Host (HTTP/1.1) or :authority (HTTP/2) selects the
 * routes a request is matched against, and with them its upstream and its access decision. What
 * each upstream received is the proof.
 */

const AUD = 'api://hosts'

describe('routes by host', () => {
  let ks: KeyServer
  let api: RecordingUpstream
  let admin: RecordingUpstream
  let web: RecordingUpstream
  let gw: StartedGateway

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    ;[api, admin, web] = await Promise.all([startUpstream(), startUpstream(), startUpstream()])
    gw = await startGateway(
      baseConfig({
        // One port for HTTP/1.1 and HTTP/2 by prior knowledge.
        listeners: [{ host: '127.0.0.1', port: 0, h2c: true }],
        security: HTTP2_LISTENERS_ACKNOWLEDGED,
        issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
        upstreams: [
          { id: 'api', url: api.url },
          { id: 'admin', url: admin.url },
          { id: 'web', url: web.url },
        ],
        routes: [
          { id: 'api-orders', hosts: ['api.example.com'], path: '/orders/**', methods: ['GET'], upstream: 'api', auth: 'public' },
          { id: 'admin-all', hosts: ['admin.example.com', '*.admin.example.com'], path: '/**', methods: ['GET'], upstream: 'admin', auth: 'required', scopes: { allOf: ['admin'] } },
          { id: 'web-orders', path: '/orders/**', methods: ['GET'], upstream: 'web', auth: 'public' },
          { id: 'web-status', path: '/status', methods: ['GET'], upstream: 'web', auth: 'public' },
        ],
        limits: { bruteForce: { enabled: false } },
      }),
    )
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([api?.close(), admin?.close(), web?.close(), ks?.close()])
  })

  /** Sends one HTTP/1.1 request with the given Host; returns the reply and which upstream got it. */
  async function viaHttp1(path: string, host: string, headers: Record<string, string> = {}): Promise<Reply & { reached: string[] }> {
    const before = receivedCounts()
    const reply = await send(gw.url, path, { headers: { host, ...headers } })
    return { ...reply, reached: reachedSince(before) }
  }

  const receivedCounts = (): number[] => [api, admin, web].map((u) => u.received.length)

  /** The upstreams that received a request since `before` (receivedCounts). */
  function reachedSince(before: number[]): string[] {
    const now = receivedCounts()
    return (['api', 'admin', 'web'] as const).filter((_, i) => now[i] > before[i])
  }

  async function viaHttp2(path: string, authority: string, headers: OutgoingHttpHeaders = {}): Promise<{ status: number; headers: IncomingHttpHeaders; reached: string[] }> {
    const before = receivedCounts()
    const session = h2connect(gw.url)
    try {
      const stream = session.request({ ':method': 'GET', ':path': path, ':authority': authority, ...headers })
      const [responseHeaders] = (await once(stream, 'response')) as [IncomingHttpHeaders]
      stream.resume()
      await once(stream, 'end')
      return { status: Number(responseHeaders[':status']), headers: responseHeaders, reached: reachedSince(before) }
    } finally {
      session.close()
    }
  }

  test('the Host picks the route, whatever its letter case, port or trailing dot', async () => {
    for (const host of ['api.example.com', 'API.Example.COM:8080', 'api.example.com.']) {
      const r = await viaHttp1('/orders/7', host)
      assert.equal(r.status, 200, host)
      assert.deepEqual(r.reached, ['api'], host)
      assert.equal(api.received.at(-1)?.url, '/orders/7')
      assert.equal(api.received.at(-1)?.headers['x-forwarded-host'], host, 'the upstream learns the host the client named')
    }
    for (const host of ['www.example.com', 'example.com', '127.0.0.1']) {
      const r = await viaHttp1('/orders/7', host)
      assert.equal(r.status, 200, host)
      assert.deepEqual(r.reached, ['web'], `${host}: a host no route names gets the routes without hosts`)
    }
  })

  test('a host with routes of its own never falls back to the routes without hosts', async () => {
    const r = await viaHttp1('/status', 'api.example.com')
    assert.equal(r.status, 404)
    assert.equal(r.body.code, 'ERR_ROUTE_NOT_FOUND')
    assert.deepEqual(r.reached, [])
    const elsewhere = await viaHttp1('/status', 'www.example.com')
    assert.equal(elsewhere.status, 200)
    assert.deepEqual(elsewhere.reached, ['web'])
  })

  test('the same path is public on one host and needs a token with a scope on another, wildcards included', async () => {
    for (const host of ['admin.example.com', 'eu.admin.example.com']) {
      const anonymous = await viaHttp1('/orders/7', host)
      assert.equal(anonymous.status, 401, host)
      assert.deepEqual(anonymous.reached, [])
      const reader = await viaHttp1('/orders/7', host, bearer(await ks.sign({ scope: 'orders:read' })))
      assert.equal(reader.status, 403, host)
      assert.match(String(reader.headers['www-authenticate']), /error="insufficient_scope", scope="admin"/)
      assert.deepEqual(reader.reached, [])
      const adminToken = await viaHttp1('/orders/7', host, bearer(await ks.sign({ scope: 'admin' })))
      assert.equal(adminToken.status, 200, host)
      assert.deepEqual(adminToken.reached, ['admin'])
    }
    // The wildcard covers names below admin.example.com, not a name that merely ends the same way.
    const lookalike = await viaHttp1('/orders/7', 'evil-admin.example.com')
    assert.equal(lookalike.status, 200)
    assert.deepEqual(lookalike.reached, ['web'])
    const scopeEvent = await gw.waitFor((l) => l.event === 'authz.insufficient_scope' && l.route === 'admin-all')
    assert.equal(scopeEvent.route, 'admin-all', 'refusals name the host\'s route')
  })

  test('a Host a service could read as another name matches no route', async () => {
    // api%2eexample.com is api.example.com once percent-decoded (RFC 3986 §6.2.2.2): neither
    // api.example.com's routes nor the routes for other hosts may take it.
    const r = await viaHttp1('/orders/7', 'api%2eexample.com')
    assert.equal(r.status, 404)
    assert.deepEqual(r.reached, [])
  })

  test('over HTTP/2 the :authority picks the route the same way', async () => {
    const toApi = await viaHttp2('/orders/9', 'API.example.com:443')
    assert.equal(toApi.status, 200)
    assert.deepEqual(toApi.reached, ['api'])
    const toAdmin = await viaHttp2('/orders/9', 'admin.example.com')
    assert.equal(toAdmin.status, 401)
    assert.deepEqual(toAdmin.reached, [])
    const noFallback = await viaHttp2('/status', 'api.example.com')
    assert.equal(noFallback.status, 404)
    assert.deepEqual(noFallback.reached, [])
    const other = await viaHttp2('/status', 'www.example.com')
    assert.equal(other.status, 200)
    assert.deepEqual(other.reached, ['web'])
  })
})

describe('routes by host behind a trusted proxy', () => {
  let api: RecordingUpstream
  let web: RecordingUpstream
  let gw: StartedGateway

  before(async () => {
    ;[api, web] = await Promise.all([startUpstream(), startUpstream()])
    gw = await startGateway(
      baseConfig({
        // The tests' connections come from loopback: they play the proxy.
        server: { trustedProxies: ['127.0.0.1'] },
        upstreams: [
          { id: 'api', url: api.url },
          { id: 'web', url: web.url },
        ],
        routes: [
          { id: 'api', hosts: ['api.example.com'], path: '/p/**', methods: ['GET'], upstream: 'api', auth: 'public' },
          { id: 'web', path: '/p/**', methods: ['GET'], upstream: 'web', auth: 'public' },
        ],
      }),
    )
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([api?.close(), web?.close()])
  })

  test("the proxy's X-Forwarded-Host must name the host the route was chosen by", async () => {
    const same = await send(gw.url, '/p/1', { headers: { host: 'api.example.com', 'x-forwarded-host': 'API.example.com:443' } })
    assert.equal(same.status, 200)
    assert.equal(api.received.at(-1)?.headers['x-forwarded-host'], 'API.example.com:443')
    // A proxy that rewrote Host, or passed a client's X-Forwarded-Host on: the route was chosen
    // for one host, the upstream would be told another.
    const before = api.received.length + web.received.length
    for (const [host, xfh] of [
      ['gateway.internal', 'api.example.com'],
      ['api.example.com', 'www.example.com'],
    ]) {
      const r = await send(gw.url, '/p/1', { headers: { host, 'x-forwarded-host': xfh } })
      assert.equal(r.status, 400, `${host} / ${xfh}`)
      assert.equal(r.body.code, 'ERR_SANITIZE_REJECTED')
    }
    assert.equal(api.received.length + web.received.length, before, 'nothing reached an upstream')
    const event = await gw.waitFor((l) => l.event === 'sanitize.rejected' && l.reason === 'forwarded_host_mismatch')
    assert.equal(event.route, 'web')
  })
})
