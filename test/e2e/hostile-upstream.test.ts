import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { connect as h2connect } from 'node:http2'
import type { Readable } from 'node:stream'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../helpers/gateway.js'

/**
 * Upstreams that break HTTP/1.1 on purpose, written byte by byte on a raw socket: what the
 * client gets must be a clean problem+json, or the upstream's answer relayed whole, never a
 * message the gateway re-framed into something the upstream did not say.
 */

/** A generous bound so a broken gateway fails the test instead of hanging it. */
const bounded = () => ({ signal: AbortSignal.timeout(20_000) })

const BIG_BODY_BYTES = 8 * 1024 * 1024

/** What the raw upstream answers to GET /hostile/<name>, as latin1 bytes. */
const ANSWERS: Record<string, string> = {
  'nul-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok',
  'cr-in-value': 'HTTP/1.1 200 OK\r\nX-A: a\rInjected: yes\r\nContent-Length: 2\r\n\r\nok',
  'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 2\r\n\r\nok',
  'space-in-name': 'HTTP/1.1 200 OK\r\nX A: a\r\nContent-Length: 2\r\n\r\nok',
  'invalid-content-length': 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok',
  'huge-head': `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\nContent-Length: 2\r\n\r\nok`,
  // The body is still gzip-coded after undici takes the chunking off; relaying it without the
  // coding would hand the client bytes nothing tells it how to read.
  'gzip-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'chunked-then-identity': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'early-hints': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  // Answers before reading the request body (an upstream's own 401 or 413), and keeps the connection.
  early: 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope',
  // 2 of 100 bytes, then nothing more.
  'body-stall': 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nab',
  // A head, then a chunked body broken before its first byte, with bytes of no request behind it.
  'bad-first-chunk': 'HTTP/1.1 200 OK\r\nX-A: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON',
  // A head, then the connection closes before the first of its 10 bytes (see `then-close` below).
  'then-close': 'HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 10\r\n\r\n',
  // More than the sockets between upstream and client hold: a client that does not read pauses it.
  big: `HTTP/1.1 200 OK\r\nContent-Length: ${BIG_BODY_BYTES}\r\n\r\n${'x'.repeat(BIG_BODY_BYTES)}`,
}

let upstream: Server
const upstreamSockets: Socket[] = []
/** The request line of every request the raw upstream read, and the connection it came on. */
const requestLines: Array<{ line: string; socket: Socket }> = []
let gw: StartedGateway

before(async () => {
  upstream = createServer((s) => {
    upstreamSockets.push(s)
    s.on('error', () => {})
    let head = ''
    s.on('data', (d: Buffer) => {
      if (head === '\0') return // the request body, if any: left unread
      head += d.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      requestLines.push({ line: head.slice(0, head.indexOf('\r\n')), socket: s })
      const name = head.slice(0, end).split(' ')[1].split('/')[2]
      head = name === 'early' ? '\0' : head.slice(end + 4)
      if (name === 'slow') {
        // The answer comes a while later: requests behind it wait for the connection.
        setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), 400)
        return
      }
      if (name === 'processing-late') {
        // Two 102s, each within headersTimeoutMs (500 ms) of the one before, and a final answer
        // later than that after the first.
        s.write('HTTP/1.1 102 Processing\r\n\r\n')
        const second = setTimeout(() => s.write('HTTP/1.1 102 Processing\r\n\r\n'), 350)
        const final = setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), 700)
        s.on('close', () => (clearTimeout(second), clearTimeout(final)))
        return
      }
      if (name === 'trickle') {
        // A chunk every 150 ms, six of them: slow, but never silent for bodyTimeoutMs (300 ms).
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
        let sent = 0
        const timer = setInterval(() => {
          if (++sent <= 6) s.write('1\r\nx\r\n')
          else {
            clearInterval(timer)
            s.write('0\r\n\r\n')
          }
        }, 150)
        s.on('close', () => clearInterval(timer))
        return
      }
      if (name === 'processing') {
        // 102 Processing every 100 ms, and never a final answer.
        const timer = setInterval(() => s.write('HTTP/1.1 102 Processing\r\n\r\n'), 100)
        s.on('close', () => clearInterval(timer))
        return
      }
      s.write(Buffer.from(ANSWERS[name] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'latin1'))
      if (name === 'then-close') s.end()
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  gw = await startGateway(
    baseConfig({
      // HTTP/1.1, and a second listener that also speaks HTTP/2 (h2c) for HTTP/2 clients.
      listeners: [
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, h2c: true },
      ],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      upstreams: [
        { id: 'hostile', url },
        { id: 'stall', url, bodyTimeoutMs: 300 },
        { id: 'single', url, connections: 1 },
        { id: 'slow-head', url, headersTimeoutMs: 500 },
      ],
      routes: [
        { path: '/hostile/**', methods: ['GET', 'POST'], upstream: 'hostile', auth: 'public' },
        { path: '/stall/**', methods: ['GET'], upstream: 'stall', auth: 'public' },
        { path: '/single/**', methods: ['GET'], upstream: 'single', auth: 'public' },
        { path: '/slow-head/**', methods: ['GET'], upstream: 'slow-head', auth: 'public' },
      ],
    }),
  )
})

after(async () => {
  await gw.stop()
  for (const s of upstreamSockets) s.destroy()
  await new Promise<void>((r) => upstream.close(() => r()))
})

function securityEvent(type: string, requestId: string) {
  return gw.waitFor((l) => l.name === 'security' && l.event === type && l.requestId === requestId, 20_000)
}

async function assertInvalidResponse(name: string): Promise<void> {
  const r = await fetch(`${gw.url}/hostile/${name}`, bounded())
  assert.equal(r.status, 502, name)
  assert.equal(r.headers.get('content-type'), 'application/problem+json')
  assert.equal(r.headers.get('x-a'), null)
  assert.equal(r.headers.get('injected'), null)
  const text = await r.text()
  const body = JSON.parse(text) as Record<string, unknown>
  assert.equal(body.code, 'ERR_FORWARD_UNAVAILABLE')
  // Nothing of undici's complaint (or the upstream's address) reaches the client.
  for (const leak of ['HTTP/1.1 protocol', 'Overflow', 'Transfer', '127.0.0.1']) assert.ok(!text.includes(leak), `${name}: ${text}`)
  const event = await securityEvent('forward.unavailable', r.headers.get('x-request-id')!)
  assert.equal(event.reason, 'invalid_response', name)
}

test('a malformed upstream response head gives 502 with reason invalid_response', async () => {
  for (const name of ['nul-in-value', 'cr-in-value', 'obs-fold', 'space-in-name', 'invalid-content-length', 'huge-head']) {
    await assertInvalidResponse(name)
  }
  // Known failures are the operator's debug lines, not warnings about an unmapped error.
  assert.equal(gw.lines.filter((l) => l.msg === 'upstream request failed' && l.level === 40).length, 0)
})

test('an upstream response with a transfer coding other than chunked gives 502 with reason invalid_response', async () => {
  for (const name of ['gzip-chunked', 'chunked-then-identity']) await assertInvalidResponse(name)
})

test('a 103 Early Hints before the final answer is not relayed and does not fail the request', async () => {
  const r = await fetch(`${gw.url}/hostile/early-hints`, bounded())
  assert.equal(r.status, 200)
  assert.equal(r.headers.get('link'), null)
  assert.equal(await r.text(), 'ok')
})

/** A raw connection to the gateway, connected, for requests sent one after another on it. */
async function connectToGateway(): Promise<Socket> {
  const { hostname, port } = new URL(gw.url)
  const socket = connect(Number(port), hostname)
  socket.on('error', () => {})
  await new Promise<void>((r) => socket.once('connect', r))
  return socket
}

/** Reads from a socket until `count` complete responses (each with a Content-Length) arrived. */
function responses(socket: Socket, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let data = ''
    const done: string[] = []
    const timer = setTimeout(() => reject(new Error(`only ${done.length} of ${count} responses arrived: ${JSON.stringify(data)}`)), 20_000)
    const onData = (c: Buffer) => {
      data += c.toString('latin1')
      for (;;) {
        const end = data.indexOf('\r\n\r\n')
        const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, end))
        if (end === -1 || length === null || data.length < end + 4 + Number(length[1])) break
        done.push(data.slice(0, end + 4 + Number(length[1])))
        data = data.slice(end + 4 + Number(length[1]))
      }
      if (done.length >= count) {
        clearTimeout(timer)
        socket.off('data', onData)
        resolve(done)
      }
    }
    socket.on('data', onData)
    socket.once('close', () => (clearTimeout(timer), reject(new Error(`connection closed after ${done.length} of ${count} responses`))))
  })
}

test('an upstream answering before the client finished its body leaves the client connection usable', async () => {
  const socket = await connectToGateway()
  try {
    const first = responses(socket, 1)
    socket.write(`POST /hostile/early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${'a'.repeat(10_000)}`)
    const [answer] = await first
    assert.match(answer, /^HTTP\/1\.1 401 /)
    assert.match(answer, /\r\nConnection: keep-alive\r\n/i)
    assert.ok(answer.endsWith('\r\n\r\nnope'))
    // The connection was promised to stay open: the rest of the body, then the next request,
    // must get the next answer instead of a connection nobody reads any more.
    const second = responses(socket, 1)
    socket.write('a'.repeat(90_000))
    socket.write('GET /hostile/next HTTP/1.1\r\nHost: x\r\n\r\n')
    const [next] = await second
    assert.match(next, /^HTTP\/1\.1 200 /)
    assert.ok(next.endsWith('\r\n\r\nok'))
  } finally {
    socket.destroy()
  }
})

test('an upstream that fails after its head but before the first body byte gets the client a 502, nothing of its head, and a connection that serves on', async () => {
  await assertInvalidResponse('bad-first-chunk')
  // On one keep-alive connection: the 502 is a whole answer, and the next request is answered.
  const socket = await connectToGateway()
  try {
    const first = responses(socket, 1)
    socket.write('GET /hostile/then-close HTTP/1.1\r\nHost: gw\r\n\r\n')
    const [answer] = await first
    assert.match(answer, /^HTTP\/1\.1 502 /)
    assert.doesNotMatch(answer, /x-a:/i, "nothing of the upstream's head")
    assert.doesNotMatch(answer, /connection: close/i)
    const event = await securityEvent('forward.unavailable', /x-request-id: (\S+)/i.exec(answer)![1])
    assert.equal(event.reason, 'socket_closed')
    const second = responses(socket, 1)
    socket.write('GET /hostile/next HTTP/1.1\r\nHost: gw\r\n\r\n')
    const [next] = await second
    assert.match(next, /^HTTP\/1\.1 200 /)
  } finally {
    socket.destroy()
  }
})

test('an upstream stalling mid-body past bodyTimeoutMs cuts the client connection, with a forward.timeout event', async () => {
  const r = await fetch(`${gw.url}/stall/body-stall`, bounded())
  assert.equal(r.status, 200)
  // Two bytes of a declared hundred: the body must not complete.
  await assert.rejects(r.arrayBuffer())
  const event = await securityEvent('forward.timeout', r.headers.get('x-request-id')!)
  assert.equal(event.code, 'ERR_FORWARD_TIMEOUT')
  assert.equal(event.reason, 'body_timeout')
})

test('bodyTimeoutMs is silence between body chunks: a body that trickles in for longer than that completes', async () => {
  const r = await fetch(`${gw.url}/stall/trickle`, bounded())
  assert.equal(r.status, 200)
  assert.equal(await r.text(), 'xxxxxx')
})

test('a body the client reads slowly is not timed out: the upstream is paused for the client, not silent', async () => {
  const socket = await connectToGateway()
  try {
    socket.write('GET /stall/big HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nX-Request-Id: slow-reader-0001\r\n\r\n')
    // Take the first bytes, then read nothing for three times bodyTimeoutMs (300 ms): the sockets
    // fill up, the gateway stops reading the upstream, and its body timer finds a client to wait for.
    await readSlowly(socket, 'slow-reader-0001')
  } finally {
    socket.destroy()
  }
})

/**
 * Takes the big body's first bytes, reads nothing for three times bodyTimeoutMs, then reads the
 * rest: all of it must come, and no forward.timeout be recorded for the request.
 */
async function readSlowly(body: Readable, requestId: string): Promise<void> {
  await once(body, 'data')
  body.pause()
  await new Promise((r) => setTimeout(r, 900))
  let bytes = 0
  body.on('data', (d: Buffer) => (bytes += d.length))
  body.resume()
  await once(body, 'end')
  assert.ok(bytes >= BIG_BODY_BYTES - 64 * 1024, `the whole body came (${bytes} bytes after the pause)`)
  assert.equal(
    gw.events().find((e) => e.event === 'forward.timeout' && e.requestId === requestId),
    undefined,
  )
}

test('a body an HTTP/2 client reads slowly is not timed out either', async () => {
  const h2cUrl = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1]
  const session = h2connect(h2cUrl)
  try {
    const stream = session.request({ ':path': '/stall/big', 'x-request-id': 'slow-reader-0002' })
    // The stream's flow-control window fills, the gateway's writes to it queue up, and the
    // gateway stops reading the upstream while the client takes nothing for 900 ms.
    await once(stream, 'response')
    await readSlowly(stream, 'slow-reader-0002')
  } finally {
    session.close()
  }
})

test('more concurrent requests than the pool has connections wait their turn and are all answered', async () => {
  const before = upstreamSockets.length
  const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(`${gw.url}/single/q${i}`, bounded()).then(async (r) => [r.status, await r.text()])))
  assert.deepEqual(statuses, Array.from({ length: 8 }, () => [200, 'ok']))
  assert.equal(upstreamSockets.length - before, 1, 'one pooled connection served them all')
})

test('interim 1xx answers do not stretch headersTimeoutMs: an upstream that never sends a final answer gets 504', async () => {
  const r = await fetch(`${gw.url}/slow-head/processing`, bounded())
  assert.equal(r.status, 504)
  const body = (await r.json()) as Record<string, unknown>
  assert.equal(body.code, 'ERR_FORWARD_TIMEOUT')
  const event = await securityEvent('forward.timeout', r.headers.get('x-request-id')!)
  assert.equal(event.reason, 'headers_timeout')
})

test('interim 1xx answers do not stretch headersTimeoutMs: a final answer later than that after the first 1xx gets 504', async () => {
  const r = await fetch(`${gw.url}/slow-head/processing-late`, bounded())
  assert.equal(r.status, 504)
  const event = await securityEvent('forward.timeout', r.headers.get('x-request-id')!)
  assert.equal(event.reason, 'headers_timeout')
})

test('a request whose client left while it waited for a pooled connection never reaches the upstream, and the connection it would have used stays open', async () => {
  const slow = fetch(`${gw.url}/single/slow`, bounded())
  // A client that asks for the same upstream (one connection, busy) and hangs up while queued.
  const { hostname, port } = new URL(gw.url)
  const leaver = connect(Number(port), hostname)
  leaver.on('error', () => {})
  await new Promise((r) => leaver.once('connect', r))
  leaver.write('GET /single/left HTTP/1.1\r\nHost: gw\r\n\r\n')
  await new Promise((r) => setTimeout(r, 100))
  leaver.destroy()
  assert.equal((await slow).status, 200)
  const left = await gw.waitFor((l) => l.name === 'access' && l.path === '/single/left', 20_000)
  assert.equal(left.status, 499)
  assert.equal((await fetch(`${gw.url}/single/after`, bounded())).status, 200)
  const socketOf = (path: string) => requestLines.find((r) => r.line.includes(path))?.socket
  assert.ok(socketOf('/single/slow'))
  assert.equal(socketOf('/single/after'), socketOf('/single/slow'), 'the request after the one that left used the same upstream connection')
  assert.equal(socketOf('/single/left'), undefined, 'the upstream never received the request of the client that left')
})
