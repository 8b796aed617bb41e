import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { rawExchange } from '../helpers/net.js'
import { frame, headerBlock, PREFACE } from '../helpers/h2-frames.js'
import { seededRandom } from '../helpers/seeded.js'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { connect as connectHttp2, constants as h2, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders as Http2Headers } from 'node:http2'
import { WebSocket, WebSocketServer } from 'ws'
import { Buffer } from 'node:buffer'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { certificate, certificateAuthority, issuedBy, listenerFiles } from '../helpers/certs.js'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { send } from '../helpers/limits.js'

/**
 * WebSocket handshakes through the gateway, with the `ws` package on both ends: the client a
 * browser or service would use, and a WebSocket server as the upstream. The handshake runs the
 * whole pipeline; only `websocket: true` routes tunnel it; the tunnel closes at the token's expiry,
 * when idle, and when the gateway drains.
 */

const AUD = 'api://chat'

interface Upstream {
  readonly url: string
  /** Handshakes that reached the upstream, with the path and headers it saw. */
  readonly handshakes: Array<{ url: string; headers: IncomingHttpHeaders }>
  /** Plain HTTP requests that reached it. */
  readonly requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }>
  close(): Promise<void>
}

/** A WebSocket echo server (over TLS with `tls`); a handshake to /refuse/** gets a 403 instead of a 101. */
async function startWebSocketUpstream(tls?: { cert: string; key: string }): Promise<Upstream> {
  const handshakes: Upstream['handshakes'] = []
  const requests: Upstream['requests'] = []
  const server: Server = (tls === undefined ? createServer : (h: RequestListener) => createHttpsServer(tls, h))((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => (body += c))
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, headers: req.headers, body })
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ plain: true }))
    })
  })
  // Picks the application subprotocol a browser test offers; any other offer gets none.
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has('chat.v1') ? 'chat.v1' : false) })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    handshakes.push({ url: req.url!, headers: req.headers })
    if (req.url!.startsWith('/eager/')) {
      // A 101 and a first message in one write: the gateway must relay what came with the answer.
      const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
      const hello = Buffer.from('hello first')
      socket.on('error', () => {})
      socket.on('end', () => socket.destroy())
      socket.write(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`),
          Buffer.from([0x81, hello.length]),
          hello,
        ]),
      )
      return
    }
    if (req.url!.startsWith('/wrong-accept/')) {
      // A 101 that does not answer the key it was sent: not a WebSocket server to trust.
      socket.on('error', () => {})
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n')
      return
    }
    if (req.url!.startsWith('/refuse/')) {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 19\r\nconnection: close\r\n\r\n{"upstream":"nope"}')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes,
    requests,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

interface Refused {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** Opens a WebSocket; resolves with it once open, or with the HTTP answer that refused the handshake. */
function openSocket(
  url: string,
  headers: Record<string, string> = {},
  tls: { ca?: string } = {},
  protocols: string[] = [],
): Promise<{ ws: WebSocket; response: IncomingMessage } | { refused: Refused }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, ...tls })
    ws.once('upgrade', (response) => ws.once('open', () => resolve({ ws, response })))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ refused: { status: res.statusCode!, headers: res.headers, body } }))
    })
    ws.once('error', reject)
  })
}

async function opened(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; response: IncomingMessage }> {
  const r = await openSocket(url, headers)
  if ('refused' in r) assert.fail(`handshake refused: ${r.refused.status} ${r.refused.body}`)
  return r
}

async function refused(url: string, headers: Record<string, string> = {}, tls: { ca?: string } = {}): Promise<Refused> {
  const r = await openSocket(url, headers, tls)
  if (!('refused' in r)) {
    r.ws.terminate()
    assert.fail('handshake unexpectedly accepted')
  }
  return r.refused
}

async function refusedWith(url: string, protocols: string[], headers: Record<string, string> = {}): Promise<Refused> {
  const r = await openSocket(url, headers, {}, protocols)
  if (!('refused' in r)) {
    r.ws.terminate()
    assert.fail('handshake unexpectedly accepted')
  }
  return r.refused
}

/** Writes raw bytes on a new connection to the gateway; resolves with all it answered once it closed the connection. */
const rawExchangeText = async (base: string, bytes: string): Promise<string> => (await rawExchange(base, [bytes])).toString('utf8')

/** Sends one message and waits for its echo. */
async function echo(ws: WebSocket, data: string | Buffer): Promise<Buffer> {
  const reply = once(ws, 'message') as Promise<[Buffer, boolean]>
  ws.send(data)
  return (await reply)[0]
}

// Each test bounds its waits: a tunnel that never closes fails its test instead of hanging the run.
describe('WebSocket tunnels', { timeout: 60_000 }, () => {
  let ks: KeyServer
  let up: Upstream
  let gw: StartedGateway
  let base = ''
  let wsBase = ''
  let chatToken = ''

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    up = await startWebSocketUpstream()
    gw = await startGateway(
      baseConfig({
        server: { websocketIdleTimeoutMs: 2500, drainTimeoutMs: 1000 },
        metrics: { enabled: true, port: 0 },
        issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
        upstreams: [
          { id: 'chat', url: up.url },
          // A port nothing listens on: the handshake finds the upstream down.
          { id: 'down', url: 'http://127.0.0.1:9', connectTimeoutMs: 2000 },
        ],
        routes: [
          { id: 'chat', path: '/chat/**', methods: ['GET'], upstream: 'chat', auth: 'required', scopes: { allOf: ['chat'] }, websocket: true },
          { id: 'browser', path: '/browser/**', methods: ['GET'], upstream: 'chat', auth: 'required', scopes: { allOf: ['chat'] }, websocket: true, websocketTokenProtocol: true },
          { id: 'capped', path: '/capped/**', methods: ['GET'], upstream: 'chat', auth: 'required', websocket: true, limits: ['one-tunnel'] },
          { id: 'lobby', path: '/lobby/**', methods: ['GET', 'POST'], upstream: 'chat', auth: 'public', websocket: true },
          { id: 'eager', path: '/eager/**', methods: ['GET'], upstream: 'chat', auth: 'public', websocket: true },
          { id: 'refuse', path: '/refuse/**', methods: ['GET'], upstream: 'chat', auth: 'public', websocket: true },
          { id: 'down', path: '/down/**', methods: ['GET'], upstream: 'down', auth: 'public', websocket: true },
          { id: 'plain', path: '/plain/**', methods: ['GET', 'POST'], upstream: 'chat', auth: 'public' },
        ],
        limits: { bruteForce: { enabled: false }, policies: [{ id: 'one-tunnel', key: ['subject'], concurrency: { limit: 1, leaseSec: 600 } }] },
      }),
    )
    base = gw.url
    wsBase = gw.url.replace(/^http/, 'ws')
    chatToken = await ks.sign({ scope: 'chat', sub: 'alice' })
  })

  after(async () => {
    if (gw?.child.exitCode === null) await gw.stop()
    await Promise.all([up?.close(), ks?.close()])
  })

  test('a handshake with a valid token and scope opens a tunnel: messages flow both ways, the upstream sees the verified identity', async () => {
    const before = up.handshakes.length
    const { ws, response } = await opened(`${wsBase}/chat/rooms/../room-1?x=1`, {
      authorization: `Bearer ${chatToken}`,
      'x-auth-subject': 'mallory',
      'x-request-id': 'ws-test-request-0001',
    })
    const metricsUrl = String(gw.lines.find((l) => l.msg === 'listening')!.metrics)
    assert.match(await (await fetch(metricsUrl)).text(), /^gateway_websocket_tunnels 1$/m, 'the open tunnel is counted')
    assert.equal(response.statusCode, 101)
    assert.equal(response.headers['x-request-id'], 'ws-test-request-0001', 'the 101 carries the request id')
    assert.equal((await echo(ws, 'hello')).toString(), 'hello')
    // A message far larger than a socket buffer: backpressure both ways, nothing lost.
    const big = Buffer.alloc(3 * 1024 * 1024, 7)
    assert.ok((await echo(ws, big)).equals(big))

    assert.equal(up.handshakes.length, before + 1)
    const seen = up.handshakes.at(-1)!
    assert.equal(seen.url, '/chat/room-1?x=1', 'the upstream gets the canonical path that was authorized')
    assert.equal(seen.headers['x-auth-subject'], 'alice', 'the verified subject, not the spoofed one')
    assert.equal(seen.headers['x-request-id'], 'ws-test-request-0001')
    assert.match(String(seen.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
    assert.equal(seen.headers.upgrade, 'websocket')
    assert.ok(seen.headers['sec-websocket-key'], 'the handshake fields travel end to end')

    const closed = gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0001')
    ws.close(1000, 'bye')
    const event = await closed
    // The closing handshake ends with the upstream closing first (RFC 6455 §7.1.1: the server closes the TCP connection).
    assert.equal(event.reason, 'upstream_closed')
    assert.equal(event.route, 'chat')
    assert.equal(event.subject, 'alice')
    assert.ok((event.bytesFromClient as number) > big.length && (event.bytesFromUpstream as number) > big.length, JSON.stringify(event))
    const metrics = await (await fetch(metricsUrl)).text()
    assert.match(metrics, /^gateway_websocket_tunnels 0$/m)
    assert.match(metrics, /^gateway_websocket_closed_total\{reason="upstream_closed"\} 1$/m)
    const access = gw.lines.find((l) => l.name === 'access' && l.requestId === 'ws-test-request-0001')
    assert.equal(access?.status, 101, 'the handshake has its access line')
    assert.ok(!JSON.stringify(gw.lines).includes(chatToken), 'no token in any line')
  })

  test('bytes the upstream sent right behind its 101 reach the client', async () => {
    const ws = new WebSocket(`${wsBase}/eager/x`)
    const [first] = (await once(ws, 'message')) as [Buffer]
    assert.equal(first.toString(), 'hello first')
    ws.terminate()
  })

  test('a client that drops its connection ends the tunnel and the upstream connection with it', async () => {
    const { ws } = await opened(`${wsBase}/lobby/drop`, { 'x-request-id': 'ws-test-request-0005' })
    assert.equal((await echo(ws, 'x')).toString(), 'x')
    ws.terminate()
    const event = await gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0005')
    assert.equal(event.reason, 'client_closed')
    assert.equal(event.subject, undefined, 'a public route has no identity')
  })

  test('the handshake is refused like any request: no token 401, a token without the scope 403; nothing reaches the upstream', async () => {
    const before = up.handshakes.length
    const missing = await refused(`${wsBase}/chat/room-1`)
    assert.equal(missing.status, 401)
    assert.equal(missing.headers['content-type'], 'application/problem+json')
    assert.equal(JSON.parse(missing.body).code, 'ERR_AUTHN_MISSING')
    assert.match(String(missing.headers['www-authenticate']), /^Bearer/)

    const other = await ks.sign({ scope: 'read', sub: 'bob' })
    const scope = await refused(`${wsBase}/chat/room-1`, { authorization: `Bearer ${other}` })
    assert.equal(scope.status, 403)
    assert.equal(JSON.parse(scope.body).code, 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
    // A token in the query string is no more accepted on a handshake than anywhere else.
    const query = await refused(`${wsBase}/chat/room-1?access_token=${chatToken}`)
    assert.equal(query.status, 400)
    assert.equal(up.handshakes.length, before)
  })

  test('a browser may send its token as a Sec-WebSocket-Protocol element where the route allows it; the element never reaches the upstream', async () => {
    const element = 'base64url.bearer.authorization.k8s.io.' + Buffer.from(chatToken).toString('base64url')
    const r = await openSocket(`${wsBase}/browser/room`, {}, {}, [element, 'chat.v1'])
    if ('refused' in r) assert.fail(`refused: ${r.refused.status} ${r.refused.body}`)
    assert.equal(r.ws.protocol, 'chat.v1', 'the upstream picked the application subprotocol')
    assert.equal((await echo(r.ws, 'from a browser')).toString(), 'from a browser')
    const seen = up.handshakes.at(-1)!
    assert.equal(seen.headers['sec-websocket-protocol'], 'chat.v1')
    assert.equal(seen.headers.authorization, `Bearer ${chatToken}`, 'the upstream gets the token the usual way')
    assert.equal(seen.headers['x-auth-subject'], 'alice')
    r.ws.close()

    const before = up.handshakes.length
    // Where the route does not take it there, the element is refused rather than ignored.
    const elsewhere = await refusedWith(`${wsBase}/chat/room`, [element, 'chat.v1'])
    assert.equal(elsewhere.status, 400)
    assert.equal(JSON.parse(elsewhere.body).code, 'ERR_AUTHN_MALFORMED')
    await gw.waitFor((l) => l.event === 'authn.malformed' && l.reason === 'protocol_token')
    // A public route does not pass it on unverified either.
    const onPublic = await refusedWith(`${wsBase}/lobby/room`, [element, 'chat.v1'])
    assert.equal(onPublic.status, 400)
    assert.equal(JSON.parse(onPublic.body).code, 'ERR_AUTHN_MALFORMED')
    // A header and an element are two credentials; so are two elements.
    const both = await refusedWith(`${wsBase}/browser/room`, [element, 'chat.v1'], { authorization: `Bearer ${chatToken}` })
    assert.equal(both.status, 400)
    assert.equal(JSON.parse(both.body).code, 'ERR_AUTHN_MALFORMED')
    await gw.waitFor((l) => l.event === 'authn.malformed' && l.reason === 'multiple_authorization' && l.route === 'browser')
    const two = await refusedWith(`${wsBase}/browser/room`, [element, element.replace('k8s.io.', 'k8s.io.A'), 'chat.v1'])
    assert.equal(two.status, 400)
    // An element that is no base64url, or does not decode to a bearer token, is malformed.
    for (const bad of ['base64url.bearer.authorization.k8s.io.not*base64', 'base64url.bearer.authorization.k8s.io.' + Buffer.from('a b\r\nx').toString('base64url')]) {
      const r2 = await refusedWith(`${wsBase}/browser/room`, [bad, 'chat.v1'])
      assert.equal(r2.status, 400, bad)
    }
    assert.equal(up.handshakes.length, before, 'no refused handshake reached the upstream')
  })

  test('a concurrency cap counts open tunnels: a tunnel holds its slot until it closes', async () => {
    const token = await ks.sign({ scope: 'chat', sub: 'dave' })
    const auth = { authorization: `Bearer ${token}` }
    const first = await opened(`${wsBase}/capped/a`, auth)
    const second = await refused(`${wsBase}/capped/b`, auth)
    assert.equal(second.status, 429)
    assert.equal(JSON.parse(second.body).code, 'ERR_LIMITS_EXCEEDED')
    // Another subject has a slot of its own.
    const other = await opened(`${wsBase}/capped/c`, { authorization: `Bearer ${await ks.sign({ scope: 'chat', sub: 'erin' })}` })
    other.ws.close()
    first.ws.close()
    await once(first.ws, 'close')
    // The slot is given back once the tunnel's connection closed.
    for (let i = 0; ; i++) {
      const r = await openSocket(`${wsBase}/capped/d`, auth)
      if (!('refused' in r)) {
        r.ws.close()
        break
      }
      assert.ok(i < 50, 'the slot was never given back')
      await new Promise((res) => setTimeout(res, 50))
    }
  })

  test('a route without websocket: true refuses a handshake (400), and still serves plain requests', async () => {
    const before = up.handshakes.length + up.requests.length
    const r = await refused(`${wsBase}/plain/x`)
    assert.equal(r.status, 400)
    assert.equal(JSON.parse(r.body).code, 'ERR_ROUTE_WEBSOCKET_NOT_ALLOWED')
    assert.equal(up.handshakes.length + up.requests.length, before, 'nothing reached the upstream')
    await gw.waitFor((l) => l.event === 'route.websocket_not_allowed' && l.route === 'plain')

    const plain = await send(base, '/plain/x')
    assert.equal(plain.status, 200)
    // A plain GET to a websocket route is an ordinary request.
    const onWsRoute = await send(base, '/lobby/x')
    assert.equal(onWsRoute.status, 200)
    assert.equal(up.requests.at(-1)?.url, '/lobby/x')
  })

  test('an upgrade to anything but WebSocket stays an ordinary request, its body and Upgrade header handled as before', async () => {
    // What `curl --http2` sends to an http:// URL: a POST with a body asking for h2c.
    const answer = await rawExchangeText(
      base,
      'POST /plain/h2c HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello',
    )
    assert.match(answer, /"plain":true/)
    assert.match(answer, /^HTTP\/1\.1 200 /)
    const seen = up.requests.at(-1)!
    assert.equal(seen.url, '/plain/h2c')
    assert.equal(seen.body, 'hello')
    assert.equal(seen.headers.upgrade, undefined, 'Upgrade is hop-by-hop')
    assert.match(answer, /\r\nConnection: close\r\n/i, 'node reads no further on this connection: the answer closes it')

    // A request pipelined right behind such an upgrade request would never be parsed: the client
    // sees the connection close after the first answer, and can send it again, instead of waiting.
    const both = await rawExchangeText(base, 'GET /plain/first HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /plain/second HTTP/1.1\r\nHost: gw\r\n\r\n')
    assert.match(both, /^HTTP\/1\.1 200 /)
    assert.match(both, /\r\nConnection: close\r\n/i)
    assert.equal(up.requests.at(-1)?.url, '/plain/first')
  })

  test('a handshake pipelined behind a request is answered after it, and opens its tunnel; behind a request whose answer closes the connection, it is dropped; the gateway serves on', async () => {
    const handshake = (path: string): string =>
      `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`
    // One write: node parses both requests, and hands the handshake over while the first
    // request's answer is still owed (it used to end the gateway's process).
    const masked = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e]) // "hello"
    const tunnelled = (await rawExchange(base, [`GET /lobby/first HTTP/1.1\r\nHost: gw\r\n\r\n${handshake('/lobby/second')}`, masked], { waitMs: 1500 })).toString('latin1')
    assert.match(tunnelled, /^HTTP\/1\.1 200 /, 'the first answer comes first')
    const switched = tunnelled.indexOf('HTTP/1.1 101 Switching Protocols\r\n')
    assert.ok(switched > tunnelled.indexOf('{"plain":true}'), `the 101 follows the first answer's body: ${tunnelled}`)
    assert.ok(tunnelled.endsWith('\x81\x05hello'), 'the tunnel echoes')
    assert.equal(up.requests.at(-1)?.url, '/lobby/first')
    assert.equal(up.handshakes.at(-1)?.url, '/lobby/second')

    // Two Host fields: refused (400), and the connection closes with the answer.
    const handshakes = up.handshakes.length
    const dropped = (await rawExchange(base, [`GET /lobby/first HTTP/1.1\r\nHost: gw\r\nHost: other\r\n\r\n${handshake('/lobby/dropped')}`], { waitMs: 1500 })).toString('latin1')
    assert.match(dropped, /^HTTP\/1\.1 400 /)
    assert.equal(dropped.indexOf('HTTP/1.1', 1), -1, 'nothing follows the refusal')
    assert.equal(up.handshakes.length, handshakes, 'the dropped handshake never reached the upstream')

    assert.ok(gw.running(), gw.stderr())
    assert.equal((await send(base, '/plain/after')).status, 200)
  })

  test('an upstream that refuses the upgrade has its answer relayed and no tunnel opens; one that is down gives 502', async () => {
    const r = await refused(`${wsBase}/refuse/x`)
    assert.equal(r.status, 403)
    assert.equal(r.body, '{"upstream":"nope"}')
    // The WebSocket smuggling trick: a handshake the upstream refuses, with an HTTP request right
    // behind it, hoping the proxy left a raw tunnel open to the upstream. Only a 101 opens one: the
    // connection closes after the refusal, and the request behind it reaches nothing.
    const answer = await rawExchangeText(
      base,
      'GET /refuse/smuggle HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 1337\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' +
        'GET /plain/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n',
    )
    assert.match(answer, /^HTTP\/1\.1 403 /)
    assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, answer)
    assert.ok(!up.requests.some((q) => q.url === '/plain/smuggled') && !up.handshakes.some((h) => h.url === '/plain/smuggled'), 'the smuggled request reached the upstream')
    const down = await refused(`${wsBase}/down/x`)
    assert.equal(down.status, 502)
    assert.equal(JSON.parse(down.body).code, 'ERR_FORWARD_UNAVAILABLE')
  })

  test('a tunnel closes when the token that opened it expires, however busy it is', { timeout: 15_000 }, async () => {
    const now = Math.floor(Date.now() / 1000)
    const shortLived = await ks.sign({ scope: 'chat', sub: 'carol', iat: now, exp: now + 2 })
    const { ws } = await opened(`${wsBase}/chat/room-2`, { authorization: `Bearer ${shortLived}`, 'x-request-id': 'ws-test-request-0002' })
    // Traffic every 200 ms keeps the idle timer from being the cause.
    const chatter = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('ping'), 200)
    const [code] = (await once(ws, 'close')) as [number]
    clearInterval(chatter)
    assert.equal(code, 1006, 'the connection is cut, not closed by the upstream')
    const event = await gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0002')
    assert.equal(event.reason, 'credential_expired')
    assert.equal(event.subject, 'carol')
  })

  test('a tunnel with no traffic is closed after websocketIdleTimeoutMs', { timeout: 15_000 }, async () => {
    const { ws } = await opened(`${wsBase}/lobby/quiet`, { 'x-request-id': 'ws-test-request-0003' })
    await once(ws, 'close')
    const event = await gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0003')
    assert.equal(event.reason, 'idle_timeout')
  })

  test('a reload leaves an open tunnel as it is, though it closes the upstream pools the tunnel came from', async () => {
    const { ws } = await opened(`${wsBase}/lobby/reload`, { 'x-request-id': 'ws-test-request-0006' })
    assert.equal((await echo(ws, 'before')).toString(), 'before')
    const reloads = gw.lines.filter((l) => l.event === 'config.loaded' && l.reload === true).length
    gw.child.kill('SIGHUP')
    await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true && gw.lines.filter((x) => x.event === 'config.loaded' && x.reload === true).length > reloads)
    assert.equal((await echo(ws, 'after')).toString(), 'after')
    assert.ok(!gw.lines.some((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0006'))
    ws.close()
  })

  test('draining ends open tunnels after drainTimeoutMs, and the gateway exits', async () => {
    const { ws } = await opened(`${wsBase}/lobby/stay`, { 'x-request-id': 'ws-test-request-0004' })
    assert.equal((await echo(ws, 'still here')).toString(), 'still here')
    const chatter = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('ping'), 200)
    const closed = once(ws, 'close')
    const code = await gw.stop()
    await closed
    clearInterval(chatter)
    assert.equal(code, 0)
    const event = gw.lines.find((l) => l.event === 'websocket.closed' && l.requestId === 'ws-test-request-0004')
    assert.equal(event?.reason, 'shutdown')
  })
})

describe('WebSocket tunnels over TLS, admitted by client certificate', { timeout: 60_000 }, () => {
  let up: Upstream
  let secureUp: Upstream
  let gw: StartedGateway
  let serverCert = ''
  let ca: Awaited<ReturnType<typeof certificateAuthority>>

  before(async () => {
    up = await startWebSocketUpstream()
    const files = await listenerFiles('portcullis-wss-', { commonName: 'portcullis-server', clientCa: true })
    const dir = files.dir
    serverCert = files.server.cert
    ca = files.ca!
    // An upstream that speaks TLS too, trusted through the upstream's own CA setting.
    const upstreamPems = await certificate('chat-upstream')
    secureUp = await startWebSocketUpstream(upstreamPems)
    writeFileSync(join(dir, 'upstream-ca.pem'), upstreamPems.cert)
    const config = baseConfig({
      listeners: [
        // Plain, for the readiness check only.
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', clientCertificates: 'request', clientCa: '${file:client-ca.pem}' } },
        // HTTP/2 as well: the ws package speaks HTTP/1.1 to it (it has no RFC 8441).
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: true } },
      ],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      upstreams: [
        { id: 'chat', url: up.url },
        { id: 'secure', url: secureUp.url, tls: { ca: '${file:upstream-ca.pem}' } },
      ],
      routes: [
        { id: 'feed', path: '/feed/**', methods: ['GET'], upstream: 'chat', auth: 'certificate', certificates: [{ uri: 'spiffe://example.org/feeder' }], websocket: true },
        { id: 'secure', path: '/secure/**', methods: ['GET'], upstream: 'secure', auth: 'public', websocket: true },
      ],
    })
    const path = join(dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    gw = await startGateway(path)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([up?.close(), secureUp?.close()])
  })

  /** Opens a wss:// tunnel through the listener at `index` to the TLS upstream, and checks one echo and what the upstream saw. */
  async function echoThrough(index: number, path: string, message: string): Promise<void> {
    const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[index]
    const ws = new WebSocket(url.replace(/^https/, 'wss') + path, { ca: serverCert })
    await once(ws, 'open')
    assert.equal((await echo(ws, message)).toString(), message)
    assert.equal(secureUp.handshakes.at(-1)?.url, path)
    ws.close()
  }

  test('a tunnel to an https:// upstream: TLS on both sides, the upstream checked against its CA', async () => {
    await echoThrough(1, '/secure/room', 'tls both ways')
  })

  test('a listener that also serves HTTP/2 opens tunnels for WebSocket clients, which speak HTTP/1.1 to it', async () => {
    await echoThrough(2, '/secure/over-h2-listener', 'next to h2')
  })

  test('wss:// through a TLS listener: the certificate is the identity, and the tunnel closes when the certificate expires', { timeout: 30_000 }, async () => {
    // A client certificate that expires a few seconds from now: valid at the handshake.
    const client = await issuedBy(ca, 'feeder', [{ type: 6, value: 'spiffe://example.org/feeder' }], new Date(Date.now() + 4000))
    const httpsUrl = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1]
    const url = httpsUrl.replace(/^https/, 'wss') + '/feed/live'
    const ws = new WebSocket(url, { ca: serverCert, cert: client.cert, key: client.key, headers: { 'x-request-id': 'wss-test-request-0001' } })
    await once(ws, 'open')
    assert.equal((await echo(ws, 'over tls')).toString(), 'over tls')
    const seen = up.handshakes.at(-1)!
    assert.equal(seen.headers['x-auth-subject'], 'spiffe://example.org/feeder')
    assert.ok(seen.headers['client-cert'], 'the verified certificate travels as Client-Cert')
    const chatter = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('ping'), 200)
    await once(ws, 'close')
    clearInterval(chatter)
    const event = await gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'wss-test-request-0001')
    assert.equal(event.reason, 'credential_expired')
    assert.equal(event.subject, 'spiffe://example.org/feeder')

    // Without a certificate the same handshake is refused before any upstream.
    const before = up.handshakes.length
    const r = await refused(url, {}, { ca: serverCert })
    assert.equal(r.status, 403)
    assert.equal(JSON.parse(r.body).code, 'ERR_AUTHN_CERTIFICATE_REQUIRED')
    assert.equal(up.handshakes.length, before)
  })
})

/** A client's WebSocket frame (RFC 6455 §5.2: FIN set, masked), for payloads under 126 bytes. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked])
}

/** The unmasked frames a server sent, read from the bytes of a stream (payloads under 126 bytes). */
function serverFrames(bytes: Buffer): Array<{ opcode: number; payload: Buffer }> {
  const frames: Array<{ opcode: number; payload: Buffer }> = []
  for (let i = 0; i + 2 <= bytes.length; ) {
    const length = bytes[i + 1] & 0x7f
    assert.ok(length < 126 && (bytes[i + 1] & 0x80) === 0, 'a short unmasked frame')
    frames.push({ opcode: bytes[i] & 0x0f, payload: bytes.subarray(i + 2, i + 2 + length) })
    i += 2 + length
  }
  return frames
}

/** An HTTP/2 session, once the gateway's SETTINGS arrived; asserts they allow extended CONNECT. */
async function http2Session(url: string, ca?: string): Promise<ClientHttp2Session> {
  const session = connectHttp2(url, ca === undefined ? {} : { ca })
  session.on('error', () => {})
  const [settings] = (await once(session, 'remoteSettings')) as [{ enableConnectProtocol?: boolean }]
  assert.equal(settings.enableConnectProtocol, true, 'the listener advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)')
  return session
}

interface Http2Handshake {
  readonly stream: ClientHttp2Stream
  readonly headers: Http2Headers
  /** Everything the stream carried, once it ended. */
  readonly received: Promise<Buffer>
}

/** Opens a WebSocket on a stream (RFC 8441 §4: extended CONNECT), resolves with the answer's head. */
async function http2Handshake(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<Http2Handshake> {
  const stream = session.request(
    { ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, ':scheme': 'https', 'sec-websocket-version': '13', ...headers },
    { endStream: false },
  )
  stream.on('error', () => {})
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  const received = new Promise<Buffer>((resolve) => stream.once('close', () => resolve(Buffer.concat(chunks))))
  const [answer] = (await once(stream, 'response')) as [Http2Headers]
  return { stream, headers: answer, received }
}

/** Sends a text message on a tunnel stream and waits for the echo to arrive. */
async function http2Echo(stream: ClientHttp2Stream, text: string): Promise<string> {
  const reply = once(stream, 'data') as Promise<[Buffer]>
  stream.write(clientFrame(0x1, Buffer.from(text)))
  const [bytes] = await reply
  const [frame] = serverFrames(bytes)
  assert.equal(frame.opcode, 0x1)
  return frame.payload.toString()
}

describe('WebSocket over HTTP/2 (RFC 8441)', { timeout: 60_000 }, () => {
  let ks: KeyServer
  let up: Upstream
  let gw: StartedGateway
  let h2cUrl = ''
  let tlsUrl = ''
  let serverCert = ''
  let chatToken = ''

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    up = await startWebSocketUpstream()
    const files = await listenerFiles('portcullis-ws-h2-', { commonName: 'localhost' })
    serverCert = files.server.cert
    const config = baseConfig({
      listeners: [
        // Plain HTTP/1.1, for the readiness check.
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, h2c: true },
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: true } },
      ],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      server: { drainTimeoutMs: 500 },
      issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
      upstreams: [{ id: 'chat', url: up.url }],
      routes: [
        { id: 'chat', path: '/chat/**', methods: ['GET'], upstream: 'chat', auth: 'required', scopes: { allOf: ['chat'] }, websocket: true },
        { id: 'lobby', path: '/lobby/**', methods: ['GET'], upstream: 'chat', auth: 'public', websocket: true },
        { id: 'wrong-accept', path: '/wrong-accept/**', methods: ['GET'], upstream: 'chat', auth: 'public', websocket: true },
        { id: 'refuse', path: '/refuse/**', methods: ['GET'], upstream: 'chat', auth: 'public', websocket: true },
        { id: 'plain', path: '/plain/**', methods: ['GET'], upstream: 'chat', auth: 'public' },
      ],
      limits: { bruteForce: { enabled: false } },
    })
    const path = join(files.dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    gw = await startGateway(path)
    const urls = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
    h2cUrl = urls[1]
    tlsUrl = urls[2].replace('127.0.0.1', 'localhost')
    chatToken = await ks.sign({ scope: 'chat', sub: 'alice' })
  })

  after(async () => {
    if (gw?.child.exitCode === null) await gw.stop()
    await Promise.all([up?.close(), ks?.close()])
  })

  test('an extended CONNECT opens a tunnel on its stream: routed and authorized as the GET handshake, the upstream sees HTTP/1.1 with a key the gateway made and checked; other streams go on beside it', async () => {
    const session = await http2Session(h2cUrl)
    const before = up.handshakes.length
    const { stream, headers, received } = await http2Handshake(session, '/chat/rooms/../room-1?x=1', {
      authorization: `Bearer ${chatToken}`,
      'x-auth-subject': 'mallory',
      'x-request-id': 'ws-h2-request-0001',
      'sec-websocket-protocol': 'chat.v1',
    })
    assert.equal(headers[':status'], 200, 'RFC 8441 §5: 200, not 101')
    assert.equal(headers['sec-websocket-protocol'], 'chat.v1', 'the subprotocol the upstream picked')
    assert.equal(headers['sec-websocket-accept'], undefined, 'the HTTP/1.1 handshake fields stay on the upstream hop')
    assert.equal(headers['x-request-id'], 'ws-h2-request-0001')
    assert.equal(await http2Echo(stream, 'hello over h2'), 'hello over h2')

    // The same connection serves an ordinary request while the tunnel is open.
    const plain = session.request({ ':path': '/plain/beside' })
    plain.resume()
    const [plainHead] = (await once(plain, 'response')) as [Http2Headers]
    assert.equal(plainHead[':status'], 200)
    assert.equal(await http2Echo(stream, 'still open'), 'still open')

    assert.equal(up.handshakes.length, before + 1)
    const seen = up.handshakes.at(-1)!
    assert.equal(seen.url, '/chat/room-1?x=1', 'the canonical path that was authorized')
    assert.equal(seen.headers['x-auth-subject'], 'alice', 'the verified subject, not the spoofed one')
    assert.equal(seen.headers.upgrade, 'websocket')
    assert.equal(Buffer.from(String(seen.headers['sec-websocket-key']), 'base64').length, 16, 'a key of 16 random bytes (RFC 6455 §4.1)')
    assert.equal(seen.headers['sec-websocket-version'], '13')
    assert.equal(seen.headers.via, '2 portcullis')

    // The closing handshake: the upstream's close frame arrives whole before the stream ends.
    const closed = gw.waitFor((l) => l.event === 'websocket.closed' && l.requestId === 'ws-h2-request-0001')
    stream.write(clientFrame(0x8, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])))
    stream.end()
    const frames = serverFrames(await received)
    assert.equal(frames.at(-1)?.opcode, 0x8, 'the upstream close frame reached the client')
    assert.equal(frames.at(-1)?.payload.readUInt16BE(0), 1000)
    assert.equal(stream.rstCode, h2.NGHTTP2_NO_ERROR, 'the stream ended without an error code')
    const event = await closed
    assert.equal(event.reason, 'upstream_closed')
    assert.equal(event.subject, 'alice')
    assert.ok((event.bytesFromClient as number) > 0 && (event.bytesFromUpstream as number) > 0, JSON.stringify(event))
    const access = gw.lines.find((l) => l.name === 'access' && l.requestId === 'ws-h2-request-0001')
    assert.equal(access?.status, 200)
    assert.equal(access?.method, 'GET')
    assert.equal(access?.httpVersion, '2.0')
    assert.ok(!JSON.stringify(gw.lines).includes(chatToken), 'no token in any line')
    session.close()
  })

  test('over TLS (ALPN h2) the same', async () => {
    const session = await http2Session(tlsUrl, serverCert)
    const { stream, headers } = await http2Handshake(session, '/lobby/tls')
    assert.equal(headers[':status'], 200)
    assert.equal(await http2Echo(stream, 'over tls'), 'over tls')
    session.destroy()
  })

  test('refusals come on the stream, which then ends; nothing reaches the upstream', async () => {
    const session = await http2Session(h2cUrl)
    const before = up.handshakes.length + up.requests.length
    const refusal = async (path: string, headers: Record<string, string> = {}): Promise<{ status: unknown; code: string }> => {
      const h = await http2Handshake(session, path, headers)
      const body = JSON.parse((await h.received).toString())
      return { status: h.headers[':status'], code: body.code }
    }
    assert.deepEqual(await refusal('/chat/room'), { status: 401, code: 'ERR_AUTHN_MISSING' })
    const other = await ks.sign({ scope: 'read', sub: 'bob' })
    assert.deepEqual(await refusal('/chat/room', { authorization: `Bearer ${other}` }), { status: 403, code: 'ERR_AUTHZ_INSUFFICIENT_SCOPE' })
    assert.deepEqual(await refusal('/plain/x'), { status: 400, code: 'ERR_ROUTE_WEBSOCKET_NOT_ALLOWED' })
    assert.equal(up.handshakes.length + up.requests.length, before)

    // Another protocol than websocket, or a websocket CONNECT that declares a body, is still a
    // CONNECT the gateway does not serve.
    for (const extra of [{ ':protocol': 'connect-udp' }, { ':protocol': 'websocket', 'sec-websocket-version': '13', 'content-length': '5' }]) {
      const other2 = session.request({ ':method': 'CONNECT', ':path': '/lobby/x', ':scheme': 'https', ...extra }, { endStream: false })
      other2.on('error', () => {})
      other2.resume()
      const [head] = (await once(other2, 'response')) as [Http2Headers]
      assert.equal(head[':status'], 501, JSON.stringify(extra))
    }
    assert.equal(up.handshakes.length + up.requests.length, before)
    session.close()
  })

  test('an upstream that refuses is relayed; one whose 101 does not answer the gateway\'s key gives 502 and no tunnel', async () => {
    const session = await http2Session(h2cUrl)
    const refusedByUpstream = await http2Handshake(session, '/refuse/x')
    assert.equal(refusedByUpstream.headers[':status'], 403)
    assert.equal((await refusedByUpstream.received).toString(), '{"upstream":"nope"}')
    const wrong = await http2Handshake(session, '/wrong-accept/x', { 'x-request-id': 'ws-h2-request-0002' })
    assert.equal(wrong.headers[':status'], 502)
    assert.equal(JSON.parse((await wrong.received).toString()).code, 'ERR_FORWARD_UNAVAILABLE')
    await gw.waitFor((l) => l.event === 'forward.unavailable' && l.requestId === 'ws-h2-request-0002' && l.reason === 'invalid_response')
    session.close()
  })

  test('tunnels and refused streams opened and reset in random order, on 400 connections: the gateway stays within its memory and serves on', async () => {
    // Each connection opens streams at random, a tunnel (/lobby/) or a request refused with 404
    // whose body the gateway does not read (no END_STREAM), and resets some of them, in a few
    // writes; then it leaves. A refused stream used to be closed (RST_STREAM NO_ERROR) while its
    // answer was still being written; with a tunnel on the same connection, the destroy that
    // followed could leave node's HTTP/2 session packing frames in a loop, its memory growing by
    // gigabytes until the process died. The seed is fixed: the same frames on every run.
    const { port, host } = new URL(h2cUrl)
    const fields = (path: string) => headerBlock([[':method', path.startsWith('/lobby/') ? 'CONNECT' : 'GET'], ...(path.startsWith('/lobby/') ? ([[':protocol', 'websocket']] as const) : []), [':scheme', 'http'], [':authority', host], [':path', path], ['sec-websocket-version', '13']])
    const blocks = [fields('/lobby/x'), fields('/nowhere/x')]
    const random = seededRandom(20261129)
    const connection = async (): Promise<void> => {
      const frames: Buffer[][] = [[Buffer.from(PREFACE), frame(4, 0, 0, Buffer.alloc(0)), frame(4, 1, 0, Buffer.alloc(0))]]
      const open: number[] = []
      for (let op = 0, id = 1, ops = 1 + random(60); op < ops; op++) {
        if (random(2) === 0) {
          // END_STREAM on some: a request with no body, a tunnel that sends nothing.
          frames.at(-1)!.push(frame(1, 0x4 | (random(5) < 2 ? 1 : 0), id, blocks[random(2)]))
          open.push(id)
          id += 2
        } else if (open.length > 0) {
          // Now and then on stream 0, which is a connection error: node ends the whole session.
          frames.at(-1)!.push(frame(3, 0, random(20) === 0 ? 0 : open[random(open.length)], Buffer.from([0, 0, 0, random(14)])))
        }
        if (random(4) === 0) frames.push([])
      }
      const socket = connect(Number(port), '127.0.0.1')
      socket.on('error', () => {})
      socket.resume()
      await once(socket, 'connect')
      for (const part of frames) {
        if (socket.destroyed) break
        socket.write(Buffer.concat(part))
        await new Promise((r) => setTimeout(r, random(4)))
      }
      await new Promise((r) => setTimeout(r, random(100)))
      socket.destroy()
    }
    const rssKiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))?.[1])
    const linux = process.platform === 'linux'
    const before = linux ? rssKiB() : 0
    for (let i = 0; i < 100; i++) await Promise.all([connection(), connection(), connection(), connection()])
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(gw.running(), 'the gateway is still running')
    if (linux) {
      const grown = rssKiB() - before
      assert.ok(grown < 300 * 1024, `the gateway's memory grew by ${Math.round(grown / 1024)} MiB`)
    }
    const session = await http2Session(h2cUrl)
    const { stream } = await http2Handshake(session, '/lobby/after')
    assert.equal(await http2Echo(stream, 'still serving'), 'still serving')
    session.close()
  })

  test('draining ends a tunnel on a stream, recorded as the shutdown', async () => {
    const session = await http2Session(h2cUrl)
    const { stream, received } = await http2Handshake(session, '/lobby/stay', { 'x-request-id': 'ws-h2-request-0003' })
    assert.equal(await http2Echo(stream, 'still here'), 'still here')
    const code = await gw.stop()
    await received
    assert.equal(code, 0)
    const event = gw.lines.find((l) => l.event === 'websocket.closed' && l.requestId === 'ws-h2-request-0003')
    assert.equal(event?.reason, 'shutdown')
  })
})
