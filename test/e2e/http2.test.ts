import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { X509Certificate } from 'node:crypto'
import { rawExchange } from '../helpers/net.js'
import { frame, goawayCode, headerBlock, PREFACE } from '../helpers/h2-frames.js'
import { Agent, fetch } from 'undici'
import { issuedBy, listenerFiles, type Pems } from '../helpers/certs.js'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

const AUD = 'h2-api'

interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** One request on an HTTP/2 session; `body` is written in the chunks given, then the stream ends. */
async function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body: readonly string[] = []): Promise<Answer> {
  const stream = session.request(headers, { endStream: body.length === 0 })
  for (const chunk of body) stream.write(chunk)
  if (body.length > 0) stream.end()
  const [responseHeaders] = (await once(stream, 'response')) as [IncomingHttpHeaders]
  let text = ''
  stream.setEncoding('utf8').on('data', (c: string) => (text += c))
  await once(stream, 'end')
  return { status: Number(responseHeaders[':status']), headers: responseHeaders, body: text }
}

/** What became of stream 1: the types of the frames that came back for it, and its RST_STREAM code if it was reset. */
async function rawStream(url: string, ca: string, fields: ReadonlyArray<readonly [string, string]>): Promise<{ frameTypes: number[]; resetCode?: number }> {
  const { hostname, port } = new URL(url)
  const socket: TLSSocket = tlsConnect({ host: hostname, port: Number(port), ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  await once(socket, 'secureConnect')
  assert.equal(socket.alpnProtocol, 'h2')
  socket.write(PREFACE)
  socket.write(frame(4, 0, 0, Buffer.alloc(0)))
  // HEADERS, END_STREAM | END_HEADERS.
  socket.write(frame(1, 0x5, 1, headerBlock(fields)))
  let buffered = Buffer.alloc(0)
  const frameTypes: number[] = []
  return new Promise((resolve) => {
    const done = (resetCode?: number) => {
      socket.destroy()
      resolve({ frameTypes, resetCode })
    }
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3)
        if (buffered.length < 9 + length) break
        const [type, flags] = [buffered[3], buffered[4]]
        const streamId = buffered.readUInt32BE(5) & 0x7fffffff
        const payload = buffered.subarray(9, 9 + length)
        buffered = buffered.subarray(9 + length)
        // SETTINGS from the server: acknowledged, as a client must.
        if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)))
        if (streamId !== 1) continue
        frameTypes.push(type)
        if (type === 3) return done(payload.readUInt32BE(0))
        if ((flags & 1) !== 0) return done()
      }
    })
    socket.on('error', () => done())
    socket.on('close', () => done())
  })
}

/**
 * Opens an HTTP/2 connection (ALPN h2) and writes `bytes` after the client preface and SETTINGS
 * (several chunks: one at a time, a few milliseconds apart, so the server reads them apart);
 * resolves with the error code of the first GOAWAY the server sent, if any, once the connection closed.
 */
async function rawConnection(url: string, ca: string, bytes: Buffer | readonly Buffer[]): Promise<{ goawayCode?: number }> {
  const { hostname, port } = new URL(url)
  const socket: TLSSocket = tlsConnect({ host: hostname, port: Number(port), ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  await once(socket, 'secureConnect')
  socket.write(PREFACE)
  socket.write(frame(4, 0, 0, Buffer.alloc(0)))
  const received: Buffer[] = []
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  socket.on('error', () => {})
  const closed = once(socket, 'close')
  for (const chunk of Buffer.isBuffer(bytes) ? [bytes] : bytes) {
    // The gateway may end the connection at any point (that is what these tests provoke).
    if (socket.destroyed || !socket.writable || socket.readableEnded) break
    socket.write(chunk)
    if (!Buffer.isBuffer(bytes)) await new Promise((r) => setTimeout(r, 5))
  }
  await closed
  return { goawayCode: goawayCode(Buffer.concat(received)) }
}

describe('HTTP/2 on a TLS listener (tls.http2)', { timeout: 60_000 }, () => {
  let ks: KeyServer
  let up: RecordingUpstream
  let gw: StartedGateway
  let base = ''
  let pems: { cert: string; key: string }
  let token = ''
  let h2: ClientHttp2Session
  const released: Array<() => void> = []

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    // /slow/ answers only when a test releases it (the drain test).
    up = await startUpstream((req, res) => {
      const answer = () => {
        // Connection-specific fields HTTP/2 cannot carry: dropped as hop-by-hop, never a failure.
        res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=5', connection: 'x-upstream-private', 'x-upstream-private': '1' })
        res.end(JSON.stringify({ url: req.url }))
      }
      if (req.url!.startsWith('/api/slow')) released.push(answer)
      else answer()
    })
    const { dir, server } = await listenerFiles('portcullis-h2-')
    pems = server
    const config = baseConfig({
      listeners: [{ host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: true } }],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      server: { http2MaxConcurrentStreams: 50, maxHeaderBytes: 4096, maxBodyBytes: 1000, headersTimeoutMs: 1000, requestTimeoutMs: 1500, drainTimeoutMs: 5000 },
      issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
      upstreams: [{ id: 'api', url: up.url }],
      routes: [
        { id: 'read', path: '/api/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['read'] } },
        { id: 'write', path: '/api/**', methods: ['POST'], upstream: 'api', auth: 'required', scopes: { allOf: ['write'] } },
        { id: 'admin', path: '/admin/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['admin'] } },
      ],
      limits: { bruteForce: { enabled: false } },
      metrics: { enabled: true, port: 0 },
    })
    const path = join(dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    // (The helper's readiness probe speaks plain HTTP.)
    gw = await startGateway(path, { waitReady: false })
    base = gw.url
    token = await ks.sign({ scope: 'read write', sub: 'alice' })
    while ((await request(session(), { ':method': 'GET', ':path': '/readyz' })).status !== 200) await new Promise((r) => setTimeout(r, 50))
  })

  after(async () => {
    h2?.destroy()
    for (const release of released) release()
    if (gw?.child.exitCode === null) await gw.stop()
    await Promise.all([up?.close(), ks?.close()])
  })

  /**
   * The test's HTTP/2 session, opened again when the gateway has closed it: it closes a session
   * left idle for max(requestTimeoutMs, keepAliveTimeoutMs) + 1 s, as these tests sometimes do.
   */
  const session = (): ClientHttp2Session => {
    if (h2 === undefined || h2.closed || h2.destroyed) h2 = h2connect(base, { ca: pems.cert, servername: 'localhost' })
    return h2
  }
  /** The pseudo-header fields of a GET of `path` on this listener, for the hand-written frames. */
  const getFields = (path: string): Array<readonly [string, string]> => [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', authority()],
    [':path', path],
  ]
  const authority = () => `localhost:${new URL(base).port}`

  test('a client that offers h2 gets it; one that does not gets HTTP/1.1 on the same port', async () => {
    const { hostname, port } = new URL(base)
    const probe = tlsConnect({ host: hostname, port: Number(port), ca: pems.cert, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] })
    await once(probe, 'secureConnect')
    assert.equal(probe.alpnProtocol, 'h2')
    probe.destroy()
    const dispatcher = new Agent({ connect: { ca: pems.cert, servername: 'localhost' } })
    const h1 = await fetch(`${base}/api/h1`, { dispatcher, headers: { authorization: `Bearer ${token}` } })
    assert.equal(h1.status, 200)
    await h1.text()
    await dispatcher.close()
    assert.equal(up.received.at(-1)!.headers.via, '1.1 portcullis')
    const access = await gw.waitFor((l) => l.name === 'access' && l.path === '/api/h1')
    assert.equal(access.httpVersion, '1.1')
  })

  test('server.maxHeaderBytes bounds both protocols: a larger HTTP/1.1 head gets 431, a larger HTTP/2 header list never reaches the upstream', async () => {
    const before = up.received.length
    const dispatcher = new Agent({ connect: { ca: pems.cert, servername: 'localhost' } })
    const h1 = await fetch(`${base}/api/big-head`, { dispatcher, headers: { authorization: `Bearer ${token}`, 'x-big': 'b'.repeat(6000) } })
    assert.equal(h1.status, 431)
    assert.equal(h1.headers.get('content-type'), 'application/problem+json')
    await h1.text()
    await dispatcher.close()
    const big = session().request({ ':method': 'GET', ':path': '/api/big-head', authorization: `Bearer ${token}`, 'x-big': 'b'.repeat(6000) })
    const outcome = await new Promise<string>((resolve) => {
      big.once('response', (h) => resolve(`status ${String(h[':status'])}`))
      big.once('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`))
      big.once('close', () => resolve(`closed ${big.rstCode}`))
    })
    assert.match(outcome, /^error ERR_HTTP2_STREAM_ERROR|^closed /, `reset, not answered: ${outcome}`)
    assert.equal(up.received.length, before)
    const next = await request(session(), { ':method': 'GET', ':path': '/api/after-big-head', authorization: `Bearer ${token}` })
    assert.equal(next.status, 200)
  })

  test('a stream runs the whole pipeline: canonical path, identity, request id and trace reach the upstream as HTTP/1.1 fields; no pseudo-header field does', async () => {
    const r = await request(session(), {
      ':method': 'GET',
      ':path': '/api/items/../item-1?x=1',
      authorization: `Bearer ${token}`,
      'x-auth-subject': 'mallory',
      'x-request-id': 'h2-test-request-0001',
    })
    assert.equal(r.status, 200, r.body)
    assert.equal(r.headers['x-request-id'], 'h2-test-request-0001')
    assert.equal(r.headers['keep-alive'], undefined)
    assert.equal(r.headers['x-upstream-private'], undefined, 'a field the upstream named in Connection is hop-by-hop')
    const seen = up.received.at(-1)!
    assert.equal(seen.url, '/api/item-1?x=1')
    assert.equal(seen.headers['x-auth-subject'], 'alice', 'the verified subject, not the spoofed one')
    assert.equal(seen.headers['x-request-id'], 'h2-test-request-0001')
    assert.match(String(seen.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
    assert.equal(seen.headers['x-forwarded-proto'], 'https')
    assert.equal(seen.headers['x-forwarded-host'], authority(), 'the :authority, as HTTP/1.1 would carry it in Host')
    assert.equal(seen.headers.via, '2 portcullis')
    assert.ok(!seen.rawHeaders.some((name, i) => i % 2 === 0 && name.startsWith(':')), JSON.stringify(seen.rawHeaders))
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === 'h2-test-request-0001')
    assert.equal(access.status, 200)
    assert.equal(access.subject, 'alice')
    assert.equal(access.httpVersion, '2.0')
  })

  test('refusals are problem+json on the stream: no token 401, a missing scope 403, a trick path to another route refused; none reaches the upstream', async () => {
    const before = up.received.length
    const missing = await request(session(), { ':method': 'GET', ':path': '/api/x' })
    assert.equal(missing.status, 401)
    assert.equal(missing.headers['content-type'], 'application/problem+json')
    assert.match(String(missing.headers['www-authenticate']), /^Bearer /)
    const scope = await request(session(), { ':method': 'GET', ':path': '/admin/x', authorization: `Bearer ${token}` })
    assert.equal(scope.status, 403)
    assert.match(String(scope.headers['www-authenticate']), /insufficient_scope/)
    for (const path of ['/api/%2e%2e/admin/x', '/api/..%2fadmin/x', '/api/%252e%252e/admin/x']) {
      const trick = await request(session(), { ':method': 'GET', ':path': path, authorization: `Bearer ${token}` })
      assert.ok(trick.status === 400 || trick.status === 403 || trick.status === 404, `${path}: ${trick.status}`)
    }
    assert.equal(up.received.length, before)
  })

  test('a body streams to the upstream with or without Content-Length; one over server.maxBodyBytes is refused with 413', async () => {
    const framed = await request(session(), { ':method': 'POST', ':path': '/api/framed', authorization: `Bearer ${token}`, 'content-length': '11' }, ['hello', ' world'])
    assert.equal(framed.status, 200, framed.body)
    assert.equal(up.received.at(-1)!.body, 'hello world')
    const streamed = await request(session(), { ':method': 'POST', ':path': '/api/streamed', authorization: `Bearer ${token}` }, ['part one, ', 'part two'])
    assert.equal(streamed.status, 200, streamed.body)
    const seen = up.received.at(-1)!
    assert.equal(seen.url, '/api/streamed')
    assert.equal(seen.body, 'part one, part two')
    // Framed by undici: chunked while it streams, or with its length when it had all arrived.
    assert.ok(seen.headers['transfer-encoding'] === 'chunked' || seen.headers['content-length'] === String(seen.body.length), JSON.stringify(seen.headers))
    const before = up.received.length
    const declared = await request(session(), { ':method': 'POST', ':path': '/api/big', authorization: `Bearer ${token}`, 'content-length': '2000' }, ['x'.repeat(2000)])
    assert.equal(declared.status, 413)
    const undeclared = await request(session(), { ':method': 'POST', ':path': '/api/big', authorization: `Bearer ${token}` }, ['x'.repeat(800), 'y'.repeat(800)])
    assert.ok(undeclared.status === 413 || undeclared.status === 502, `${undeclared.status} ${undeclared.body}`)
    assert.ok(up.received.slice(before).every((r) => r.body.length <= 1000), 'no upstream got more than the limit')
  })

  test('a refusal before the body arrived ends the stream after its answer (RST_STREAM NO_ERROR): the client stops sending', async () => {
    const stream = session().request({ ':method': 'POST', ':path': '/api/upload' }, { endStream: false })
    // A body the client would go on sending: it never ends the stream itself.
    stream.write('x'.repeat(500))
    const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders]
    assert.equal(Number(headers[':status']), 401)
    let body = ''
    stream.setEncoding('utf8').on('data', (c: string) => (body += c))
    await once(stream, 'close')
    assert.equal(JSON.parse(body).status, 401)
    assert.equal(stream.rstCode, constants.NGHTTP2_NO_ERROR)
    const next = await request(session(), { ':method': 'GET', ':path': '/api/after-refusal', authorization: `Bearer ${token}` })
    assert.equal(next.status, 200, 'the session serves on')
  })

  test('a Host that names another authority than :authority is refused (RFC 9113 §8.3.1)', async () => {
    const before = up.received.length
    const r = await request(session(), { ':method': 'GET', ':path': '/api/x', ':authority': authority(), host: 'evil.example', authorization: `Bearer ${token}` })
    assert.equal(r.status, 400)
    const event = await gw.waitFor((l) => l.event === 'sanitize.rejected' && l.reason === 'host_authority_mismatch')
    assert.equal(event.path, '/api/x')
    const same = await request(session(), { ':method': 'GET', ':path': '/api/same', ':authority': authority(), host: authority().toUpperCase(), authorization: `Bearer ${token}` })
    assert.equal(same.status, 200)
    assert.equal(up.received.length, before + 1)
  })

  test('two Authorization fields on one stream are refused (400 invalid_request), as on HTTP/1.1', async () => {
    const before = up.received.length
    const r = await rawStream(base, pems.cert, [
      ...getFields('/api/two-credentials'),
      ['authorization', `Bearer ${token}`],
      ['authorization', `Bearer ${token}`],
    ])
    assert.ok(r.frameTypes.includes(1), `the stream is answered: ${JSON.stringify(r)}`)
    const event = await gw.waitFor((l) => l.event === 'authn.malformed' && l.path === '/api/two-credentials')
    assert.equal(event.reason, 'multiple_authorization')
    assert.equal(event.status, 400)
    assert.equal(up.received.length, before)
  })

  test('fields HTTP/2 forbids (Transfer-Encoding, Connection) reset the stream before the gateway sees it', async () => {
    const before = up.received.length
    for (const field of [
      ['transfer-encoding', 'chunked'],
      ['connection', 'keep-alive'],
      ['te', 'gzip'],
    ] as const) {
      const r = await rawStream(base, pems.cert, [
        ...getFields('/api/forbidden-field'),
        ['authorization', `Bearer ${token}`],
        field,
      ])
      assert.equal(r.resetCode, constants.NGHTTP2_PROTOCOL_ERROR, `${field[0]}: ${JSON.stringify(r)}`)
    }
    assert.equal(up.received.length, before)
    assert.ok(!gw.lines.some((l) => l.name === 'access' && l.path === '/api/forbidden-field'))
  })

  test('a field whose value holds CR, LF or NUL, or whose name is not a token, is dropped by nghttp2: it never reaches the upstream, split or whole', async () => {
    const r = await rawStream(base, pems.cert, [
      ...getFields('/api/injected'),
      ['authorization', `Bearer ${token}`],
      ['x-note', 'a\r\nx-auth-subject: mallory'],
      ['x-nul', 'a\u0000b'],
      ['x bad name', 'v'],
    ])
    assert.ok(r.frameTypes.includes(1), JSON.stringify(r))
    const seen = up.received.at(-1)!
    assert.equal(seen.url, '/api/injected')
    assert.equal(seen.headers['x-auth-subject'], 'alice')
    for (const name of ['x-note', 'x-nul', 'x bad name']) assert.equal(seen.headers[name], undefined, name)
    // An invalid pseudo-header value resets the stream.
    const bad = await rawStream(base, pems.cert, getFields('/api/x y'))
    assert.equal(bad.resetCode, constants.NGHTTP2_PROTOCOL_ERROR)
  })

  /** The gateway's count of HTTP/2 connections ended for a reason (events are sampled per address; the metric counts each). */
  const sessionErrors = async (reason: string): Promise<number> => {
    const metrics = await (await fetch(String(gw.lines.find((l) => l.msg === 'listening')!.metrics))).text()
    return Number(new RegExp(`^gateway_http2_session_errors_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0)
  }
  test('a rapid reset (streams opened and reset at once, CVE-2023-44487) ends its connection (ENHANCE_YOUR_CALM) after a hundred streams, recorded as http2.session_error; the gateway serves on', async () => {
    const before = up.received.length
    const headers = headerBlock([...getFields('/api/flood'), ['authorization', `Bearer ${token}`]])
    // Ten streams per write, each HEADERS (END_HEADERS) followed at once by RST_STREAM CANCEL:
    // paced below node's own guards (streams rejected over the concurrency limit within one read,
    // nghttp2's reset rate limit), which a burst in one write meets first.
    const chunks: Buffer[] = []
    for (let i = 0; i < 300; i++) {
      const frames: Buffer[] = []
      for (let j = 0; j < 10; j++) {
        const id = 1 + 2 * (i * 10 + j)
        frames.push(frame(1, 0x4, id, headers), frame(3, 0, id, Buffer.from([0, 0, 0, 8])))
      }
      chunks.push(Buffer.concat(frames))
    }
    const flood = await rawConnection(base, pems.cert, chunks)
    assert.equal(flood.goawayCode, constants.NGHTTP2_ENHANCE_YOUR_CALM)
    const event = await gw.waitFor((l) => l.event === 'http2.session_error')
    assert.equal(event.reason, 'rapid_reset')
    assert.equal(event.clientIp, '127.0.0.1')
    const reached = up.received.length - before
    assert.ok(reached <= 200, `${reached} of the 3000 streams reached the upstream`)
    const next = await request(session(), { ':method': 'GET', ':path': '/api/after-flood', authorization: `Bearer ${token}` })
    assert.equal(next.status, 200)
  })

  test('a settings flood ends its connection, counted (flood)', async () => {
    const frames: Buffer[] = []
    for (let i = 0; i < 20_000; i++) frames.push(frame(4, 0, 0, Buffer.alloc(0)))
    await rawConnection(base, pems.cert, Buffer.concat(frames))
    // (Its event is sampled away behind the rapid reset's, from the same address: the metric counts each.)
    while ((await sessionErrors('flood')) === 0) await new Promise((r) => setTimeout(r, 20))
    assert.equal(await sessionErrors('rapid_reset'), 1)
  })



  test('a frame that breaks the protocol ends the connection, counted (protocol_error)', async () => {
    // WINDOW_UPDATE with an increment of 0 on an idle stream.
    const broken = await rawConnection(base, pems.cert, frame(8, 0, 1, Buffer.from([0, 0, 0, 0])))
    assert.notEqual(broken.goawayCode, undefined, 'the server said GOAWAY')
    while ((await sessionErrors('protocol_error')) === 0) await new Promise((r) => setTimeout(r, 20))
  })

  test('HTTP/1.1 spoken after ALPN chose h2 is a bad preface: the connection ends, counted', async () => {
    const { hostname, port } = new URL(base)
    const socket = tlsConnect({ host: hostname, port: Number(port), ca: pems.cert, servername: 'localhost', ALPNProtocols: ['h2'] })
    await once(socket, 'secureConnect')
    socket.on('error', () => {})
    socket.resume()
    socket.write('GET /api/x HTTP/1.1\r\nHost: localhost\r\n\r\n')
    await once(socket, 'close')
    while ((await sessionErrors('bad_preface')) === 0) await new Promise((r) => setTimeout(r, 20))
  })

  test('CONNECT is refused on its stream; the session serves on', async () => {
    const stream = session().request({ ':method': 'CONNECT', ':authority': 'internal.example:443' })
    const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders]
    stream.resume()
    assert.equal(Number(headers[':status']), 501)
    assert.equal(headers['content-type'], 'application/problem+json')
    const next = await request(session(), { ':method': 'GET', ':path': '/api/after-connect', authorization: `Bearer ${token}` })
    assert.equal(next.status, 200)
  })

  test('the session advertises server.http2MaxConcurrentStreams', async () => {
    const s = session()
    await request(s, { ':method': 'GET', ':path': '/healthz' })
    assert.equal(s.remoteSettings.maxConcurrentStreams, 50)
    assert.equal(s.remoteSettings.enablePush, false)
  })

  test('a stream whose body does not arrive within server.requestTimeoutMs gets 408 and is ended', async () => {
    const before = up.received.length
    const stream = session().request({ ':method': 'POST', ':path': '/api/stalled', authorization: `Bearer ${token}` }, { endStream: false })
    stream.write('a start, and then nothing')
    const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders]
    assert.equal(Number(headers[':status']), 408)
    let body = ''
    stream.setEncoding('utf8').on('data', (c: string) => (body += c))
    await once(stream, 'close')
    assert.equal(JSON.parse(body).code, 'ERR_HTTP_REQUEST_TIMEOUT', 'the whole answer arrives before the stream is ended')
    assert.equal(stream.rstCode, constants.NGHTTP2_NO_ERROR)
    const access = await gw.waitFor((l) => l.name === 'access' && l.path === '/api/stalled')
    assert.equal(access.status, 408)
    // The upstream got the request as it streamed in, but never a complete body.
    assert.ok(up.received.slice(before).every((r) => r.url !== '/api/stalled'))
    const next = await request(session(), { ':method': 'GET', ':path': '/api/after-stall', authorization: `Bearer ${token}` })
    assert.equal(next.status, 200, 'the session serves on')
  })

  // Last: it stops the gateway.
  test('SIGTERM: the session is told to go away (GOAWAY), the stream in flight finishes', async () => {
    const goaway = once(session(), 'goaway')
    const inFlight = request(session(), { ':method': 'GET', ':path': '/api/slow', authorization: `Bearer ${token}` })
    while (released.length === 0) await new Promise((r) => setTimeout(r, 20))
    const exited = gw.stop()
    await goaway
    released.shift()!()
    const r = await inFlight
    assert.equal(r.status, 200)
    assert.equal(await exited, 0)
  })
})

describe('HTTP/2 connections: client certificates, requests per connection, idle close', { timeout: 60_000 }, () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  let serverCert = ''
  let ca: Pems
  let h2Url = ''

  before(async () => {
    up = await startUpstream()
    const files = await listenerFiles('portcullis-h2c-', { clientCa: true })
    const dir = files.dir
    serverCert = files.server.cert
    ca = files.ca!
    const config = baseConfig({
      listeners: [
        // Plain, for the readiness check only.
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: true, clientCertificates: 'request', clientCa: '${file:client-ca.pem}' } },
      ],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      server: { maxRequestsPerSocket: 2, headersTimeoutMs: 1000, requestTimeoutMs: 1500, keepAliveTimeoutMs: 500 },
      upstreams: [{ id: 'u', url: up.url }],
      routes: [
        { id: 'internal', path: '/internal/**', methods: ['GET'], upstream: 'u', auth: 'certificate', certificates: [{ uri: 'spiffe://example.org/billing' }] },
        { id: 'public', path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'public' },
      ],
    })
    const path = join(dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    gw = await startGateway(path)
    h2Url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1]
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('a client certificate admits a service on an HTTP/2 stream and reaches the upstream as Client-Cert; none is refused', async () => {
    const client = await issuedBy(ca, 'billing', [{ type: 6, value: 'spiffe://example.org/billing' }])
    const withCert = h2connect(h2Url, { ca: serverCert, servername: 'localhost', cert: client.cert, key: client.key })
    const r = await request(withCert, { ':method': 'GET', ':path': '/internal/invoices' })
    withCert.close()
    assert.equal(r.status, 200, r.body)
    const seen = up.received.at(-1)!
    assert.equal(seen.url, '/internal/invoices')
    const der = new X509Certificate(client.cert).raw.toString('base64')
    assert.equal(seen.headers['client-cert'], `:${der}:`)
    const without = h2connect(h2Url, { ca: serverCert, servername: 'localhost' })
    const refused = await request(without, { ':method': 'GET', ':path': '/internal/invoices' })
    without.close()
    assert.equal(refused.status, 403)
    assert.equal(up.received.at(-1), seen)
  })

  test('server.maxRequestsPerSocket: the connection gets GOAWAY once its last stream has started, and that stream is answered', async () => {
    const session = h2connect(h2Url, { ca: serverCert, servername: 'localhost' })
    let toldToGo = false
    session.once('goaway', () => (toldToGo = true))
    assert.equal((await request(session, { ':method': 'GET', ':path': '/p/1' })).status, 200)
    assert.equal(toldToGo, false)
    assert.equal((await request(session, { ':method': 'GET', ':path': '/p/2' })).status, 200)
    // The GOAWAY went out as the second stream started, ahead of its answer (long before the idle close).
    assert.equal(toldToGo, true)
    await once(session, 'close')
    assert.deepEqual(
      up.received.slice(-2).map((r) => r.url),
      ['/p/1', '/p/2'],
    )
  })

  test('an idle connection is closed with GOAWAY after max(requestTimeoutMs, keepAliveTimeoutMs) + 1 s', async () => {
    const session = h2connect(h2Url, { ca: serverCert, servername: 'localhost' })
    assert.equal((await request(session, { ':method': 'GET', ':path': '/p/idle' })).status, 200)
    const [code] = (await once(session, 'goaway')) as [number]
    assert.equal(code, constants.NGHTTP2_NO_ERROR)
    await once(session, 'close')
  })
})

describe('An h2c listener: HTTP/2 by prior knowledge and HTTP/1.1 on one port', { timeout: 60_000 }, () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  let h2cUrl = ''

  before(async () => {
    up = await startUpstream()
    gw = await startGateway(
      baseConfig({
        listeners: [
          // Plain HTTP/1.1, for the readiness check.
          { host: '127.0.0.1', port: 0 },
          { host: '127.0.0.1', port: 0, h2c: true },
        ],
        security: HTTP2_LISTENERS_ACKNOWLEDGED,
        server: { headersTimeoutMs: 1000, requestTimeoutMs: 1500 },
        upstreams: [{ id: 'u', url: up.url }],
        routes: [{ id: 'public', path: '/p/**', methods: ['GET', 'POST'], upstream: 'u', auth: 'public' }],
      }),
    )
    h2cUrl = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1]
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('both protocols on one port, each served as on a listener of its own', async () => {
    const h1 = await fetch(`${h2cUrl}/p/over-http1`, { headers: { 'x-request-id': 'h2c-port-request-0001' } })
    assert.equal(h1.status, 200)
    await h1.text()
    assert.equal(up.received.at(-1)?.url, '/p/over-http1')
    assert.equal(up.received.at(-1)?.headers.via, '1.1 portcullis')
    const session = h2connect(h2cUrl)
    const h2 = await request(session, { ':method': 'GET', ':path': '/p/over-h2', 'x-request-id': 'h2c-port-request-0002' })
    session.close()
    assert.equal(h2.status, 200)
    assert.equal(up.received.at(-1)?.headers.via, '2 portcullis')
    const lines = await Promise.all(['h2c-port-request-0001', 'h2c-port-request-0002'].map((id) => gw.waitFor((l) => l.name === 'access' && l.requestId === id)))
    assert.deepEqual(
      lines.map((l) => l.httpVersion),
      ['1.1', '2.0'],
    )
  })

  test('the first bytes decide, however they are cut: a request line sent a byte at a time, a preface in two writes', async () => {
    // "P" could begin the preface: the listener waits for the next byte before it decides.
    const post = await rawExchange(h2cUrl, ['P', 'OST /p/split HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'], { then: 'end' })
    assert.match(post.toString('latin1'), /^HTTP\/1\.1 200 /)
    assert.equal(up.received.at(-1)?.url, '/p/split')
    assert.equal(up.received.at(-1)?.body, 'hi')
    // A preface cut after "PRI * HT", then a SETTINGS frame: the gateway answers HTTP/2 frames.
    const answer = await rawExchange(h2cUrl, ['PRI * HT', Buffer.concat([Buffer.from('TP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(7, 0, 0, Buffer.alloc(8))])], { then: 'end' })
    assert.ok(answer.length >= 9, 'frames came back')
    assert.equal(answer[3], 4, 'the first frame is the server SETTINGS frame')
  })

  test('a rapid reset in one write: the streams node hands over after the guard ended their connection are dropped, and the gateway serves on', async () => {
    // Preface, SETTINGS and 150 streams each opened and reset at once, all in one write. node reads
    // them in one go and hands each stream over a tick later; by the time the last ones come, the
    // rapid-reset guard has ended their session. Before, the first of them (it has no session)
    // threw in the listener and ended the gateway's process: ordinary requests, then WebSocket
    // handshakes (extended CONNECT, RFC 8441), which take the same way in.
    const authority = new URL(h2cUrl).host
    const get: Array<readonly [string, string]> = [[':method', 'GET'], [':scheme', 'http'], [':authority', authority], [':path', '/p/burst']]
    const websocket: Array<readonly [string, string]> = [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', authority], [':path', '/p/burst'], ['sec-websocket-version', '13']]
    for (const fields of [get, websocket]) {
      const block = headerBlock(fields)
      const frames = [Buffer.from(PREFACE), frame(4, 0, 0, Buffer.alloc(0))]
      for (let id = 1; id < 300; id += 2) frames.push(frame(1, 0x4, id, block), frame(3, 0, id, Buffer.from([0, 0, 0, 8])))
      const answer = await rawExchange(h2cUrl, [Buffer.concat(frames)], { waitMs: 10_000 })
      assert.equal(goawayCode(answer), constants.NGHTTP2_ENHANCE_YOUR_CALM)
      assert.ok(gw.running(), 'the gateway is still running')
    }
    const event = await gw.waitFor((l) => l.event === 'http2.session_error')
    assert.equal(event.reason, 'rapid_reset')
    const session = h2connect(h2cUrl)
    const after = await request(session, { ':method': 'GET', ':path': '/p/after-burst' })
    session.close()
    assert.equal(after.status, 200)
  })

  test('a connection that sends too little to decide is closed after headersTimeoutMs; a slow HTTP/1.1 head still gets its 408', async () => {
    // Half a preface, then nothing (the socket stays open for writing): the gateway hangs up.
    const half = await rawExchange(h2cUrl, ['PRI * HTTP/2.0\r\n'])
    assert.equal(half.length, 0)
    // An HTTP/1.1 request whose head never ends: node's HTTP/1.1 server watches this connection too.
    const slow = await rawExchange(h2cUrl, ['GET /p/slow HTTP/1.1\r\nHost: gw\r\n'])
    assert.match(slow.toString('latin1'), /^HTTP\/1\.1 408 /)
  })
})
