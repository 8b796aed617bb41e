import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/** A generous bound so a broken gateway fails the test instead of hanging it. */
const bounded = () => ({ signal: AbortSignal.timeout(20_000) })

/**
 * Sends bytes exactly as written (fetch refuses Connection, TE, Upgrade…) and reads until the
 * server closes. The request must say `Connection: close`; the socket is not half-closed, since a
 * client FIN means "hung up" to the gateway.
 */
function rawRequest(baseUrl: string, text: string): Promise<string> {
  const { hostname, port } = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text))
    let data = ''
    socket.setEncoding('latin1')
    socket.setTimeout(20_000, () => socket.destroy(new Error('raw request timed out')))
    socket.on('data', (c: string) => (data += c))
    socket.on('end', () => resolve(data))
    socket.on('error', reject)
  })
}

const STREAM_CHUNKS = 40
const STREAM_CHUNK = randomBytes(32 * 1024)
const streamDigest = (() => {
  const h = createHash('sha256')
  for (let i = 0; i < STREAM_CHUNKS; i++) h.update(STREAM_CHUNK)
  return h.digest('hex')
})()

let up: RecordingUpstream
let based: RecordingUpstream
let streamer: RecordingUpstream
let bodiless: RecordingUpstream
let gw: StartedGateway

before(async () => {
  up = await startUpstream((req, res) => {
    // Hop-by-hop on the way back: the client must not see them.
    res.setHeader('connection', 'keep-alive, X-Up-Hop')
    res.setHeader('x-up-hop', 'secret-hop')
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' })
    res.end(JSON.stringify({ url: req.url }))
  })
  based = await startUpstream()
  streamer = await startUpstream((_req, res) => {
    // A streamed (chunked, no Content-Length) response written over several turns of the loop.
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    let i = 0
    const next = () => {
      if (i++ === STREAM_CHUNKS) return res.end()
      if (res.write(STREAM_CHUNK)) setImmediate(next)
      else res.once('drain', next)
    }
    next()
  })
  bodiless = await startUpstream((req, res) => {
    // Answers without a body that still carry a Content-Length: the size of the representation
    // (RFC 9110 §8.6 allows it on 304 and on the answer to HEAD; on a 204 it is forbidden, and sent anyway).
    if (req.url === '/bodiless/304') res.writeHead(304, { etag: '"v1"', 'content-length': '1234' })
    else if (req.url === '/bodiless/204') res.writeHead(204, { 'x-done': 'yes', 'content-length': '1234' })
    else res.writeHead(200, { etag: '"v1"', 'content-type': 'application/json', 'content-length': '1234' })
    res.end()
  })
  gw = await startGateway(
    baseConfig({
      upstreams: [
        { id: 'demo', url: up.url },
        { id: 'based', url: based.url + '/base/' },
        { id: 'streamer', url: streamer.url },
        { id: 'bodiless', url: bodiless.url },
      ],
      routes: [
        { path: '/public/**', methods: ['GET', 'POST', 'PUT'], upstream: 'demo', auth: 'public' },
        { path: '/svc/**', methods: ['GET'], upstream: 'based', auth: 'public', stripPrefix: '/svc' },
        { path: '/stream', methods: ['GET'], upstream: 'streamer', auth: 'public' },
        { path: '/bodiless/**', methods: ['GET'], upstream: 'bodiless', auth: 'public' },
      ],
    }),
  )
})

after(async () => {
  await gw?.stop()
  await Promise.all([up?.close(), based?.close(), streamer?.close(), bodiless?.close()])
})

function lastReceived(upstream: RecordingUpstream, path: string) {
  let hit
  for (const r of upstream.received) if (r.url === path) hit = r
  assert.ok(hit, `upstream never received ${path}`)
  return hit
}

test('spoofed identity headers never reach the upstream, whatever their case', async () => {
  const r = await fetch(gw.url + '/public/spoof', {
    ...bounded(),
    headers: {
      'X-User-Id': 'admin',
      'X-Auth-Subject': 'admin',
      'x-AUTH-scopes': 'admin:all',
      'X-Forwarded-User': 'admin',
      'X-Scopes': 'admin',
      'X-Auth-Issuer': 'https://evil.example',
      'X-Client-Id': 'trusted-client',
      'x-Portcullis-Verified': 'true',
      'Remote-User': 'admin',
      'Remote-Groups': 'admins',
      'X-Forwarded-Email': 'admin@example.com',
      'X-Amzn-Oidc-Identity': 'admin',
      'Cf-Access-Jwt-Assertion': 'admin',
      'X-Harmless': 'kept',
    },
  })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/spoof')
  const names = got.rawHeaders.filter((_: string, i: number) => i % 2 === 0).map((n: string) => n.toLowerCase())
  for (const banned of ['x-user-id', 'x-auth-subject', 'x-auth-scopes', 'x-forwarded-user', 'x-scopes', 'x-auth-issuer', 'x-client-id', 'x-portcullis-verified', 'remote-user', 'remote-groups', 'x-forwarded-email', 'x-amzn-oidc-identity', 'cf-access-jwt-assertion']) {
    assert.ok(!names.includes(banned), `${banned} reached the upstream`)
  }
  assert.ok(!JSON.stringify(got.headers).includes('admin'))
  assert.equal(got.headers['x-harmless'], 'kept')
})

test('underscore spellings of stripped and gateway-owned headers never reach the upstream', async () => {
  // node keeps underscores in field names; CGI-style upstreams (WSGI, Rack, PHP) map X_Auth_Subject
  // and X-Auth-Subject to one variable, so the underscore twin would smuggle the identity in.
  const r = await fetch(gw.url + '/public/underscore', {
    ...bounded(),
    headers: {
      X_Auth_Subject: 'admin',
      x_auth_scopes: 'admin:all',
      X_User: 'admin',
      X_Forwarded_For: '10.9.9.9',
      x_request_id: 'forged-request-id',
      x_portcullis_verified: 'true',
      Remote_User: 'admin',
      X_Harmless_Thing: 'kept',
    },
  })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/underscore')
  const names = got.rawHeaders.filter((_: string, i: number) => i % 2 === 0).map((n: string) => n.toLowerCase())
  for (const banned of ['x_auth_subject', 'x_auth_scopes', 'x_user', 'x_forwarded_for', 'x_request_id', 'x_portcullis_verified', 'remote_user']) {
    assert.ok(!names.includes(banned), `${banned} reached the upstream`)
  }
  assert.ok(!JSON.stringify(got.rawHeaders).includes('admin'))
  assert.ok(!JSON.stringify(got.rawHeaders).includes('10.9.9.9'))
  assert.equal(got.headers['x_harmless_thing'], 'kept', 'an underscore name that matches nothing stripped is forwarded')
})

test('method and URL overrides and client-address claims never reach the upstream', async () => {
  // The gateway authorizes the method and path it routed; an upstream honouring these would act
  // on another one (e.g. POST + X-HTTP-Method-Override: DELETE where DELETE needs another scope).
  const forged: Record<string, string> = {
    'X-HTTP-Method-Override': 'DELETE',
    'X-HTTP-Method': 'DELETE',
    'X-Method-Override': 'DELETE',
    'X-Original-URL': '/admin/keys',
    'X-Rewrite-URL': '/admin/keys',
    'X-Client-IP': '10.9.9.9',
    'True-Client-IP': '10.9.9.9',
    'CF-Connecting-IP': '10.9.9.9',
    'X-Cluster-Client-IP': '10.9.9.9',
    'Fastly-Client-IP': '10.9.9.9',
    X_HTTP_Method_Override: 'DELETE',
  }
  const r = await fetch(gw.url + '/public/override', { ...bounded(), method: 'POST', body: 'x', headers: forged })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/override')
  assert.equal(got.method, 'POST')
  const names = got.rawHeaders.filter((_: string, i: number) => i % 2 === 0).map((n: string) => n.toLowerCase())
  for (const banned of Object.keys(forged)) assert.ok(!names.includes(banned.toLowerCase()), `${banned} reached the upstream`)
  assert.ok(!JSON.stringify(got.rawHeaders).includes('10.9.9.9'))
  assert.ok(!JSON.stringify(got.rawHeaders).includes('DELETE'))
})

test('the upstream receives exactly the path and query, and its answer comes back', async () => {
  const r = await fetch(gw.url + '/public/a/b?x=%20y&z=1&z=2', bounded())
  assert.equal(r.status, 200)
  assert.deepEqual(await r.json(), { url: '/public/a/b?x=%20y&z=1&z=2' })
  assert.equal(r.headers.get('x-upstream'), 'yes')
  assert.equal(lastReceived(up, '/public/a/b?x=%20y&z=1&z=2').method, 'GET')
})

test('stripPrefix removes the route prefix and the upstream URL path is prepended', async () => {
  const r = await fetch(gw.url + '/svc/items/7?q=1', bounded())
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  assert.equal(based.received.at(-1)?.url, '/base/items/7?q=1')
})

test('the upstream gets its own Host and the original one in X-Forwarded-Host', async () => {
  const r = await fetch(gw.url + '/public/host', bounded())
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/host')
  assert.equal(got.headers.host, new URL(up.url).host)
  assert.equal(got.headers['x-forwarded-host'], new URL(gw.url).host)
  assert.equal(got.headers['x-forwarded-proto'], 'http')
})

test('a well-formed client X-Request-Id reaches the upstream and comes back in the response', async () => {
  const id = 'client-request-0001'
  const r = await fetch(gw.url + '/public/rid-good', { ...bounded(), headers: { 'X-Request-Id': id } })
  await r.arrayBuffer()
  assert.equal(r.headers.get('x-request-id'), id)
  assert.equal(lastReceived(up, '/public/rid-good').headers['x-request-id'], id)
})

test('a malformed client X-Request-Id is replaced before it reaches the upstream', async () => {
  const bad = 'bad id"<script>'
  const r = await fetch(gw.url + '/public/rid-bad', { ...bounded(), headers: { 'X-Request-Id': bad } })
  await r.arrayBuffer()
  const sent = lastReceived(up, '/public/rid-bad').headers['x-request-id']
  assert.ok(typeof sent === 'string' && sent !== bad && sent.length > 0)
  assert.equal(r.headers.get('x-request-id'), sent)
})

test('a valid traceparent keeps its trace-id with a new parent-id', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const r = await fetch(gw.url + '/public/trace-good', {
    ...bounded(),
    headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'congo=t61rcWkgMzE' },
  })
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/trace-good').headers
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(got.traceparent))
  assert.ok(m, `bad traceparent ${String(got.traceparent)}`)
  assert.equal(m[1], traceId)
  assert.notEqual(m[2], '00f067aa0ba902b7')
  assert.equal(got.tracestate, 'congo=t61rcWkgMzE')
})

test('an invalid traceparent is replaced by a new trace', async () => {
  const r = await fetch(gw.url + '/public/trace-bad', {
    ...bounded(),
    headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'congo=t61rcWkgMzE' },
  })
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/trace-bad').headers
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(String(got.traceparent))
  assert.ok(m, `bad traceparent ${String(got.traceparent)}`)
  assert.notEqual(m[1], '00000000000000000000000000000000')
  assert.equal(got.tracestate, undefined)
})

test('hop-by-hop headers and the headers named in Connection are removed in both directions', async () => {
  const answer = await rawRequest(
    gw.url,
    'GET /public/hop HTTP/1.1\r\n' +
      'Host: gw.test\r\n' +
      'Connection: close, X-Drop-Me\r\n' +
      'X-Drop-Me: 1\r\n' +
      'Keep-Alive: timeout=99\r\n' +
      'Proxy-Connection: keep-alive\r\n' +
      'TE: trailers\r\n' +
      'Trailer: X-Checksum\r\n' +
      'Upgrade: h2c\r\n' +
      'Proxy-Authorization: Basic cHJveHk6c2VjcmV0\r\n' +
      'X-Kept: yes\r\n' +
      '\r\n',
  )
  assert.match(answer, /^HTTP\/1\.1 200 /)
  const got = lastReceived(up, '/public/hop').headers
  for (const name of ['x-drop-me', 'keep-alive', 'proxy-connection', 'trailer', 'upgrade', 'proxy-authorization']) {
    assert.equal(got[name], undefined, `${name} reached the upstream`)
  }
  assert.ok(!String(got.connection ?? '').toLowerCase().includes('x-drop-me'))
  assert.equal(got.te, 'trailers')
  assert.equal(got['x-kept'], 'yes')
  // The upstream's own Connection-named header does not come back to the client.
  const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase()
  assert.ok(!head.includes('x-up-hop'), head)
  assert.ok(head.includes('x-upstream: yes'))
})

test('X-Forwarded-For from an untrusted client is replaced by the peer address', async () => {
  const r = await fetch(gw.url + '/public/xff', { ...bounded(), headers: { 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=6.6.6.6', 'X-Forwarded-Proto': 'https' } })
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/xff').headers
  assert.equal(got['x-forwarded-for'], '127.0.0.1')
  assert.equal(got.forwarded, undefined)
  assert.equal(got['x-forwarded-proto'], 'http')
})

test('X-Forwarded-For from a trusted proxy is extended with the proxy address', async (t) => {
  const upstream = await startUpstream()
  const trusting = await startGateway(
    baseConfig({
      server: { trustedProxies: ['127.0.0.1'] },
      upstreams: [{ id: 'u', url: upstream.url }],
      routes: [{ path: '/public/**', methods: ['GET'], upstream: 'u', auth: 'public' }],
    }),
  )
  t.after(async () => {
    await trusting.stop()
    await upstream.close()
  })
  const r = await fetch(trusting.url + '/public/xff', { ...bounded(), headers: { 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https' } })
  await r.arrayBuffer()
  const got = upstream.received.at(-1)!.headers
  assert.equal(got['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
  assert.equal(got['x-forwarded-proto'], 'https')
})

test('a large POST body is streamed to the upstream intact', async () => {
  const body = randomBytes(5 * 1024 * 1024 * 3 / 4).toString('base64') // 5 MiB of ASCII
  const r = await fetch(gw.url + '/public/upload', { ...bounded(), method: 'POST', body, headers: { 'content-type': 'text/plain' } })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/upload')
  assert.equal(got.method, 'POST')
  assert.equal(got.headers['content-length'], String(body.length))
  assert.equal(got.body.length, body.length)
  assert.ok(got.body === body, 'body differs')
})

test('a chunked request body is streamed to the upstream intact', async () => {
  const parts = Array.from({ length: 50 }, (_, i) => `part-${i};`.repeat(500))
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const p of parts) controller.enqueue(new TextEncoder().encode(p))
      controller.close()
    },
  })
  const r = await fetch(gw.url + '/public/chunked', { ...bounded(), method: 'PUT', body: stream, duplex: 'half' } as RequestInit)
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = lastReceived(up, '/public/chunked')
  assert.equal(got.headers['transfer-encoding'], 'chunked')
  assert.equal(got.body, parts.join(''))
})

test('a streamed upstream response arrives intact', async () => {
  const r = await fetch(gw.url + '/stream', bounded())
  assert.equal(r.status, 200)
  const bytes = Buffer.from(await r.arrayBuffer())
  assert.equal(bytes.length, STREAM_CHUNKS * STREAM_CHUNK.length)
  assert.equal(createHash('sha256').update(bytes).digest('hex'), streamDigest)
})

test('a HEAD request is forwarded and answered without a body', async () => {
  const r = await fetch(gw.url + '/public/head', { ...bounded(), method: 'HEAD' })
  assert.equal(r.status, 200)
  assert.equal((await r.arrayBuffer()).byteLength, 0)
  assert.equal(lastReceived(up, '/public/head').method, 'HEAD')
})

/** The status lines of two requests sent back to back on one connection: both answered means the first was framed right and kept the connection open. */
async function twiceOnOneConnection(method: string, path: string, headers = ''): Promise<string[]> {
  const head = `${method} ${path} HTTP/1.1\r\nHost: x\r\n${headers}`
  const text = await rawRequest(gw.url, `${head}\r\n${head}Connection: close\r\n\r\n`)
  return text.match(/^HTTP\/1\.1 \d{3}/gm) ?? []
}

test('a 304 that carries a Content-Length reaches the client with its ETag, and the connection stays open', async () => {
  const r = await fetch(gw.url + '/bodiless/304', { ...bounded(), headers: { 'if-none-match': '"v1"' } })
  assert.equal(r.status, 304)
  assert.equal(r.headers.get('etag'), '"v1"')
  // The size of the representation the client holds, relayed as the upstream sent it.
  assert.equal(r.headers.get('content-length'), '1234')
  assert.equal((await r.arrayBuffer()).byteLength, 0)
  assert.deepEqual(await twiceOnOneConnection('GET', '/bodiless/304', 'If-None-Match: "v1"\r\n'), ['HTTP/1.1 304', 'HTTP/1.1 304'])
})

test('a 204 that carries a Content-Length reaches the client without it, and the connection stays open', async () => {
  const r = await fetch(gw.url + '/bodiless/204', bounded())
  assert.equal(r.status, 204)
  assert.equal(r.headers.get('x-done'), 'yes')
  assert.equal(r.headers.get('content-length'), null, 'RFC 9110 §8.6: no Content-Length in a 204')
  assert.equal((await r.arrayBuffer()).byteLength, 0)
  assert.deepEqual(await twiceOnOneConnection('GET', '/bodiless/204'), ['HTTP/1.1 204', 'HTTP/1.1 204'])
})

test('a HEAD answered with a Content-Length and no body reaches the client with that Content-Length', async () => {
  const r = await fetch(gw.url + '/bodiless/head', { ...bounded(), method: 'HEAD' })
  assert.equal(r.status, 200)
  assert.equal(r.headers.get('content-length'), '1234')
  assert.equal(r.headers.get('etag'), '"v1"')
  assert.equal((await r.arrayBuffer()).byteLength, 0)
  assert.deepEqual(await twiceOnOneConnection('HEAD', '/bodiless/head'), ['HTTP/1.1 200', 'HTTP/1.1 200'])
})

// Depends on the real authn stage (it verifies the token and sets ctx.identity).
test('identity headers sent upstream come from the verified token only', async (t) => {
  const ks = await startKeyServer()
  const upstream = await startUpstream()
  const secured = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'u', url: upstream.url }],
      routes: [{ path: '/private/**', methods: ['GET'], upstream: 'u', auth: 'required', scopes: { allOf: ['read'] } }],
    }),
  )
  t.after(async () => {
    await secured.stop()
    await upstream.close()
    await ks.close()
  })
  const token = await ks.sign({ scope: 'write read', sub: 'user-42', client_id: 'client-7' })
  const r = await fetch(secured.url + '/private/me', {
    ...bounded(),
    headers: { authorization: `Bearer ${token}`, 'X-Auth-Subject': 'admin', 'X-AUTH-SCOPES': 'admin', 'x-auth-client-id': 'evil' },
  })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  const got = upstream.received.at(-1)!
  assert.equal(got.headers['x-auth-subject'], 'user-42')
  assert.equal(got.headers['x-auth-client-id'], 'client-7')
  assert.equal(got.headers['x-auth-scopes'], 'read write')
  assert.equal(got.headers['x-auth-issuer'], ks.issuer)
  // Each identity header arrives exactly once: the spoofed copies were removed, not appended to.
  const names = got.rawHeaders.filter((_: string, i: number) => i % 2 === 0).map((n: string) => n.toLowerCase())
  assert.equal(names.filter((n) => n === 'x-auth-subject').length, 1)
  assert.equal(got.headers.authorization, `Bearer ${token}`)
})
