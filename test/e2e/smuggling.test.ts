import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Request framing and pipelining over raw sockets against the built gateway: what one connection
 * carries must reach the upstream as the requests the gateway routed, authorized and answered,
 * and nothing else.
 */

/**
 * Writes the bytes exactly as given and reads until the gateway closes the connection (each
 * exchange ends with a request that says Connection: close, or with one the gateway refuses).
 */
function exchange(baseUrl: string, text: string): Promise<string> {
  const { hostname, port } = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(Buffer.from(text, 'latin1')))
    let data = ''
    socket.setEncoding('latin1')
    // A bound so that a broken gateway fails the test instead of hanging it.
    socket.setTimeout(20_000, () => socket.destroy(new Error('no end of the exchange')))
    socket.on('data', (c: string) => (data += c))
    socket.on('end', () => {
      socket.destroy()
      resolve(data)
    })
    socket.on('error', reject)
  })
}

const statuses = (text: string): number[] => [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]))

let ks: KeyServer
let up: RecordingUpstream
let gw: StartedGateway
let host: string
/** Answers the held /public/hold request, while one is held. */
let release: (() => void) | undefined
/** Whether a request reached the upstream while /public/hold was held. */
let overlapped = false

before(async () => {
  ks = await startKeyServer()
  up = await startUpstream((req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`answer to ${req.url}`)
    }
    if (req.url !== '/public/hold') return answer()
    // Held until another request arrives (which would be two at once), or for a while.
    const timer = setTimeout(() => {
      release = undefined
      answer()
    }, 500)
    release = () => {
      clearTimeout(timer)
      release = undefined
      answer()
    }
  })
  // A request arriving while /public/hold is held is noted, and releases it.
  const received = up.received
  const push = received.push.bind(received)
  received.push = (...items) => {
    if (release !== undefined) {
      overlapped = true
      release()
    }
    return push(...items)
  }
  gw = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'up', url: up.url }],
      routes: [
        { id: 'public', path: '/public/**', methods: ['GET', 'POST'], upstream: 'up', auth: 'public' },
        { id: 'admin', path: '/admin/**', methods: ['GET', 'POST'], upstream: 'up', auth: 'required', scopes: { allOf: ['admin'] } },
      ],
    }),
  )
  host = new URL(gw.url).host
})

after(async () => {
  await gw?.stop()
  await up?.close()
  await ks?.close()
})

/** Sends one request on a connection of its own and waits until the upstream has it. */
async function marker(name: string): Promise<void> {
  const r = await fetch(`${gw.url}/public/marker-${name}`, { signal: AbortSignal.timeout(20_000) })
  assert.equal(r.status, 200)
  await r.arrayBuffer()
  assert.ok(up.received.some((x) => x.url === `/public/marker-${name}`))
}

const urls = () => up.received.map((r) => r.url)

test('pipelined requests on one connection reach the upstream one at a time, answered in order', async () => {
  overlapped = false
  const text =
    `GET /public/hold HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
    `GET /public/p2 HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
    `GET /public/p3 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
  const out = await exchange(gw.url, text)
  assert.deepEqual(statuses(out), [200, 200, 200])
  const order = ['/public/hold', '/public/p2', '/public/p3'].map((u) => out.indexOf(`answer to ${u}`))
  assert.ok(order.every((i, k) => i !== -1 && (k === 0 || i > order[k - 1])), out)
  assert.equal(overlapped, false, 'the upstream received a request of the connection while an earlier one was unanswered')
})

for (const [name, framing] of [
  ['Content-Length', (body: string) => `Content-Length: ${body.length}\r\n\r\n${body}`],
  ['chunked', (body: string) => `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`],
] as const) {
  test(`after a refusal that closes the connection before its ${name} body was read, nothing pipelined reaches the upstream`, async () => {
    // The body holds a request of its own: it is body, never a request, and what follows the body is never run.
    const smuggled = `GET /admin/smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    const text = `POST /admin/x HTTP/1.1\r\nHost: ${host}\r\n${framing(smuggled)}` + `GET /public/after-refusal-${name} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
    const out = await exchange(gw.url, text)
    assert.deepEqual(statuses(out), [401])
    assert.match(out, /^connection: close\r$/im)
    await marker(`refusal-${name}`)
    for (const url of urls()) assert.ok(!url.startsWith('/admin') && url !== `/public/after-refusal-${name}`, `the upstream received ${url}`)
  })
}

/** Sends one exchange that the gateway must refuse with 400 ERR_SANITIZE_REJECTED, closing the connection, before any upstream. */
async function assertRefused(text: string, path: string): Promise<void> {
  const out = await exchange(gw.url, text)
  assert.deepEqual(statuses(out), [400], out)
  assert.match(out, /"code":"ERR_SANITIZE_REJECTED"/)
  assert.match(out, /^connection: close\r$/im)
  await marker(path.slice(1).replace(/\//g, '-'))
  assert.ok(!urls().includes(path), `the upstream received ${path}`)
}

test('Transfer-Encoding on an HTTP/1.0 request is refused before any upstream, and the connection closed', async () => {
  // An HTTP/1.0 intermediary knows no chunked coding: it would read the chunks as another request.
  const smuggled = `GET /admin/smuggled HTTP/1.0\r\n\r\n`
  await assertRefused(`POST /public/http10-chunked HTTP/1.0\r\nHost: ${host}\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`, '/public/http10-chunked')
})

test('a request line without an HTTP version, or of a version other than 1.0 and 1.1, is refused before any upstream', async () => {
  await assertRefused(`GET /public/http09\r\n\r\n`, '/public/http09')
  await assertRefused(`GET /public/http20 HTTP/2.0\r\nHost: ${host}\r\n\r\n`, '/public/http20')
})

test('several Host field lines are refused before any upstream', async () => {
  await assertRefused(`GET /public/two-hosts HTTP/1.1\r\nHost: ${host}\r\nHost: evil.example\r\n\r\n`, '/public/two-hosts')
})

for (const bad of ['', 'good.example, evil.example', 'evil.example/x?y', 'user@evil.example']) {
  test(`a Host of ${JSON.stringify(bad)} is refused before any upstream, which would take it as X-Forwarded-Host`, async () => {
    const path = `/public/bad-host-${encodeURIComponent(bad).replace(/%/g, '')}`
    await assertRefused(`GET ${path} HTTP/1.1\r\nHost: ${bad}\r\n\r\n`, path)
  })
}

/** Asserts one problem+json refusal that closes the connection, and returns its security event. */
async function refusal(out: string, status: number, code: string, event: string): Promise<Record<string, unknown>> {
  assert.deepEqual(statuses(out), [status], out)
  assert.match(out, /^content-type: application\/problem\+json/im)
  assert.match(out, new RegExp(`"code":"${code}"`))
  assert.match(out, /^connection: close\r$/im)
  const id = /"requestId":"([^"]+)"/.exec(out)?.[1]
  return gw.waitFor((l) => l.name === 'security' && l.event === event && l.requestId === id, 20_000)
}

test('an HTTP/1.1 request without Host is refused in problem+json with an event, before any upstream; HTTP/1.0 needs none', async () => {
  const refused = await exchange(gw.url, `GET /public/no-host HTTP/1.1\r\nConnection: keep-alive\r\n\r\n`)
  const event = await refusal(refused, 400, 'ERR_SANITIZE_REJECTED', 'sanitize.rejected')
  assert.equal(event.reason, 'missing_host')
  await marker('no-host')
  assert.ok(!urls().includes('/public/no-host'))
  const out = await exchange(gw.url, `GET /public/no-host-10 HTTP/1.0\r\n\r\n`)
  assert.deepEqual(statuses(out), [200], out)
  assert.ok(urls().includes('/public/no-host-10'))
})

test('an Expect other than 100-continue gets 417 problem+json and an event, before any upstream, and the connection closed', async () => {
  const out = await exchange(gw.url, `POST /public/expect HTTP/1.1\r\nHost: ${host}\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello`)
  const event = await refusal(out, 417, 'ERR_HTTP_EXPECTATION_FAILED', 'http.expectation_failed')
  assert.equal(event.reason, 'expect')
  assert.equal(event.status, 417)
  await marker('expect')
  assert.ok(!urls().includes('/public/expect'))
})

test('CONNECT gets 501 problem+json and an event instead of a dropped connection, and opens no tunnel', async () => {
  const target = new URL(up.url).host
  const event = await refusal(await exchange(gw.url, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`), 501, 'ERR_HTTP_METHOD_NOT_SUPPORTED', 'http.method_not_supported')
  assert.equal(event.reason, 'connect')
  assert.equal(event.decision, 'deny')
})

test('a CONNECT pipelined behind a request still being answered closes the connection instead of writing its 501 where that answer belongs', async () => {
  const target = new URL(up.url).host
  const { hostname, port } = new URL(gw.url)
  const out = await new Promise<string>((resolve) => {
    const socket = connect(Number(port), hostname, () =>
      socket.write(`GET /public/hold HTTP/1.1\r\nHost: ${host}\r\n\r\nCONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`),
    )
    let data = ''
    socket.setEncoding('latin1')
    socket.setTimeout(20_000, () => socket.destroy())
    socket.on('data', (c: string) => (data += c))
    // A reset is an answer here too: only what was written before it matters.
    socket.on('error', () => {})
    socket.on('close', () => resolve(data))
  })
  // The first status line on the connection is read as the answer to GET /public/hold.
  assert.ok(!statuses(out).includes(501), out)
  await gw.waitFor((l) => l.name === 'security' && l.event === 'http.method_not_supported' && l.reason === 'connect', 20_000)
})
