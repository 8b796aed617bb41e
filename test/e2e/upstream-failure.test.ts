import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { eventually } from '../helpers/limits.js'
import { freePort } from '../helpers/net.js'
import { startUpstream } from '../helpers/upstream.js'

/** A generous bound so a broken gateway fails the test instead of hanging it. */
const bounded = () => ({ signal: AbortSignal.timeout(20_000) })

/** A TCP server that accepts connections and never answers; records which sockets closed. */
async function startSilentServer(): Promise<{ url: string; sockets: Socket[]; closed: Set<Socket>; server: Server; close(): Promise<void> }> {
  const sockets: Socket[] = []
  const closed = new Set<Socket>()
  const server = createServer((s) => {
    sockets.push(s)
    s.on('error', () => {})
    s.on('close', () => closed.add(s))
    // Read (and ignore) the request: a socket that is never read never notices the peer's FIN.
    s.resume()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    closed,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

async function assertStillServes(gw: StartedGateway): Promise<void> {
  const r = await fetch(gw.url + '/ok/again', bounded())
  assert.equal(r.status, 200)
  assert.deepEqual(await r.json(), { ok: true, url: '/ok/again' })
}

/**
 * A gateway with two public routes: /<id>/** to the upstream under test and /ok/** to a healthy
 * upstream (what assertStillServes asks). After the test it stops the gateway, calls `alsoClose`
 * (the upstream under test) and closes the healthy upstream.
 */
async function gatewayBeside(t: TestContext, upstream: { id: string; url: string; headersTimeoutMs?: number }, alsoClose?: () => Promise<void>): Promise<StartedGateway> {
  const healthy = await startUpstream()
  const gw = await startGateway(
    baseConfig({
      upstreams: [upstream, { id: 'ok', url: healthy.url }],
      routes: [
        { path: `/${upstream.id}/**`, methods: ['GET'], upstream: upstream.id, auth: 'public' },
        { path: '/ok/**', methods: ['GET'], upstream: 'ok', auth: 'public' },
      ],
    }),
  )
  t.after(async () => {
    await gw.stop()
    await alsoClose?.()
    await healthy.close()
  })
  return gw
}

function securityEvent(gw: StartedGateway, type: string, requestId: string) {
  return gw.waitFor((l) => l.name === 'security' && l.event === type && l.requestId === requestId, 20_000)
}

test('an upstream refusing connections gives 502 ERR_FORWARD_UNAVAILABLE and a forward.unavailable event', async (t) => {
  const gw = await gatewayBeside(t, { id: 'dead', url: `http://127.0.0.1:${await freePort()}` })
  const r = await fetch(gw.url + '/dead/x', bounded())
  assert.equal(r.status, 502)
  assert.equal(r.headers.get('content-type'), 'application/problem+json')
  const body = (await r.json()) as Record<string, unknown>
  assert.equal(body.code, 'ERR_FORWARD_UNAVAILABLE')
  // Nothing about the upstream (address, error text) leaks to the client.
  assert.ok(!JSON.stringify(body).includes('127.0.0.1'))
  assert.ok(!JSON.stringify(body).includes('ECONNREFUSED'))
  const requestId = r.headers.get('x-request-id')!
  assert.equal(body.requestId, requestId)
  const event = await securityEvent(gw, 'forward.unavailable', requestId)
  assert.equal(event.code, 'ERR_FORWARD_UNAVAILABLE')
  assert.equal(event.reason, 'connect_refused')
  await assertStillServes(gw)
})

test('an upstream that accepts but never answers gives 504 ERR_FORWARD_TIMEOUT after headersTimeoutMs', async (t) => {
  const silent = await startSilentServer()
  const gw = await gatewayBeside(t, { id: 'silent', url: silent.url, headersTimeoutMs: 300 }, silent.close)
  const r = await fetch(gw.url + '/silent/x', bounded())
  assert.equal(r.status, 504)
  const body = (await r.json()) as Record<string, unknown>
  assert.equal(body.code, 'ERR_FORWARD_TIMEOUT')
  const event = await securityEvent(gw, 'forward.timeout', r.headers.get('x-request-id')!)
  assert.equal(event.reason, 'headers_timeout')
  await assertStillServes(gw)
})

for (const framing of ['chunked', 'content-length'] as const) {
  test(`an upstream closing the socket mid-response (${framing}) cuts the client connection instead of ending the body`, async (t) => {
    const broken = await startUpstream((_req, res) => {
      res.writeHead(200, framing === 'content-length' ? { 'content-type': 'text/plain', 'content-length': '100000' } : { 'content-type': 'text/plain' })
      res.write('x'.repeat(1000))
      setTimeout(() => res.socket?.destroy(), 50)
    })
    const gw = await gatewayBeside(t, { id: 'broken', url: broken.url }, broken.close)
    const r = await fetch(gw.url + '/broken/x', bounded())
    assert.equal(r.status, 200)
    const requestId = r.headers.get('x-request-id')!
    // The body must fail to complete: a truncated body presented as whole would be a lie.
    await assert.rejects(r.arrayBuffer())
    const event = await securityEvent(gw, 'forward.unavailable', requestId)
    assert.equal(event.reason, 'response_aborted')
    await assertStillServes(gw)
  })
}

test('an upstream that ends its response short of its Content-Length cuts the client connection instead of ending the body', async (t) => {
  // A clean end (Connection: close, then FIN) after half the declared body: undici reports a
  // length mismatch, not a reset. Bodiless answers may carry a Content-Length; a 200 may not fall short of it.
  const short = createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n0123456789'))
  })
  await new Promise<void>((r) => short.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(short.address() as AddressInfo).port}`
  const gw = await gatewayBeside(t, { id: 'short', url }, () => new Promise<void>((r) => short.close(() => r())))
  const r = await fetch(gw.url + '/short/x', bounded())
  assert.equal(r.status, 200)
  await assert.rejects(r.arrayBuffer())
  const event = await securityEvent(gw, 'forward.unavailable', r.headers.get('x-request-id')!)
  assert.equal(event.reason, 'response_aborted')
  await assertStillServes(gw)
})

test('a client that hangs up makes the gateway abort the upstream request', async (t) => {
  const silent = await startSilentServer()
  // Long enough that only the client's hang-up, not the timeout, can free the upstream socket.
  const gw = await gatewayBeside(t, { id: 'silent', url: silent.url, headersTimeoutMs: 600_000 }, silent.close)
  const req = httpRequest(gw.url + '/silent/hang')
  req.on('error', () => {})
  req.end()
  await eventually(async () => (silent.sockets.length === 1 ? true : undefined), 'the upstream connection', 20_000, 20)
  const upstreamSocket = silent.sockets[0]
  assert.ok(!silent.closed.has(upstreamSocket), 'the upstream connection closed before the client hung up')
  req.destroy()
  await eventually(async () => (silent.closed.has(upstreamSocket) ? true : undefined), 'the gateway to close the upstream connection', 20_000, 20)
  await assertStillServes(gw)
})

test("a route's upstreamTimeouts replace its upstream's: a slow answer is waited for on that route only", async (t) => {
  // Answers after 2.5 s: well beyond the upstream's 500 ms (undici checks its headers timer about
  // every half second), within the slow route's 10 s.
  const slow = createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => setTimeout(() => s.end('HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow'), 2500))
  })
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => slow.close(() => r())))
  const gw = await startGateway(
    baseConfig({
      upstreams: [{ id: 'slow', url: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`, headersTimeoutMs: 500 }],
      routes: [
        { path: '/report/**', methods: ['GET'], upstream: 'slow', auth: 'public', upstreamTimeouts: { headersMs: 10_000 } },
        { path: '/api/**', methods: ['GET'], upstream: 'slow', auth: 'public' },
      ],
    }),
  )
  t.after(() => gw.stop())
  const report = await fetch(gw.url + '/report/q3', bounded())
  assert.equal(report.status, 200)
  assert.equal(await report.text(), 'slow')
  const api = await fetch(gw.url + '/api/x', bounded())
  assert.equal(api.status, 504)
  assert.equal((await api.json()).code, 'ERR_FORWARD_TIMEOUT')
})
