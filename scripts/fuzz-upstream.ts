// `npm run fuzz:upstream`: an upstream that answers the gateway with seeded random HTTP/1.1
// responses, honest or broken, and clients that check what reaches them. Not part of `npm test`
// (it runs for minutes); what it finds gets a test of its own.
//
// Every request is `GET /p/<id>`, sent through a keep-alive agent, so the gateway's pooled upstream
// connections (two of them) carry requests of many clients one after another. The upstream is a
// raw TCP server: for each request it reads, its id's seed picks the answer. Mostly an honest one
// (`[id=<id>]` in a body framed by Content-Length, chunked, with trailers), else what a broken or
// hostile upstream sends: a second response right behind the first, a body longer or shorter than
// its Content-Length, both framings, two lengths, broken chunks, 1xx answers (many of them), a
// body on a 204 or 304, a head cut off, a close-delimited HTTP/1.0 body, NUL, obs-fold or 70 KiB
// in the head, a status line of garbage, a stall past bodyTimeoutMs. Bytes a response did not
// account for carry `POISON`. They arrive with or before the end of the response they follow:
// sent later, after a complete response, they would be the next request's answer to any HTTP/1.1
// client (see the split below).
//
// With FUZZ_UPSTREAM=http2 the upstream speaks HTTP/2 instead (scripts/fuzz-upstream-h2.ts), and
// the requests are POSTs that carry their id as body. With FUZZ_CLIENT=http2 the clients speak
// HTTP/2 to an h2c listener (four connections, many streams each), so the answers go out through
// the gateway's HTTP/2 response path.
//
// A client must only ever get its own answer: a body with `POISON`, or with another request's id,
// means bytes of one response reached another request (response queue poisoning) and fails the
// run, as does the gateway's process ending, its memory growing by more than 500 MiB, or its no
// longer answering. FUZZ_SEED, FUZZ_CONNECTIONS (here: requests) and FUZZ_PARALLEL as in
// scripts/fuzz-harness.ts.
import { Agent, request } from 'node:http'
import { connect as connectHttp2, type ClientHttp2Session } from 'node:http2'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway } from '../test/helpers/gateway.js'
import { seededRandom } from '../test/helpers/seeded.js'
import { runFuzz } from './fuzz-harness.js'
import { startBrokenHttp2Upstream } from './fuzz-upstream-h2.js'

/**
 * What the upstream writes for request `id`: an honest answer, or one of the broken ones.
 * `complete`: where a well-formed first response ends when more bytes follow it.
 */
function answer(id: string, random: (n: number) => number): { bytes: string; then: 'keep' | 'close' | 'stall'; complete?: number } {
  // Bracketed, so a body cut short (a broken chunk, say) is never read as another id.
  const body = `[id=${id}]`
  const ok = (head = ''): string => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n${head}content-length: ${body.length}\r\n\r\n${body}`
  const poison = `POISON-${id}`
  const extra = (): string => `HTTP/1.1 200 OK\r\ncontent-length: ${poison.length}\r\n\r\n${poison}`
  switch (random(3) > 0 ? 0 : 1 + random(22)) {
    case 0:
      return { bytes: random(2) === 0 ? ok() : `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`, then: 'keep' }
    case 1:
      return { bytes: ok() + extra(), then: 'keep', complete: ok().length }
    case 2:
      return { bytes: ok() + poison, then: 'keep', complete: ok().length } // a body longer than its Content-Length
    case 3:
      return { bytes: `HTTP/1.1 200 OK\r\ncontent-length: ${body.length + 20}\r\n\r\n${body}`, then: random(2) === 0 ? 'close' : 'stall' }
    case 4:
      return { bytes: `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${extra()}`, then: 'keep' }
    case 5:
      return { bytes: `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\ncontent-length: ${body.length + poison.length}\r\n\r\n${body}${poison}`, then: 'keep' }
    case 6:
      return { bytes: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n${extra()}`, then: 'keep' }
    case 7:
      return { bytes: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${(body.length - 2).toString(16)}\r\n${body}\r\n0\r\n\r\n${poison}`, then: 'keep' }
    case 8:
      return { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n' + ok(), then: 'keep' }
    case 9:
      return { bytes: 'HTTP/1.1 103 Early Hints\r\n\r\n'.repeat(200 + random(2000)) + ok(), then: 'keep' }
    case 10:
      return { bytes: `HTTP/1.1 204 No Content\r\ncontent-length: ${poison.length}\r\n\r\n${poison}`, then: 'keep' }
    case 11:
      return { bytes: `HTTP/1.1 304 Not Modified\r\n\r\n${extra()}`, then: 'keep' }
    case 12:
      return { bytes: ok().slice(0, random(ok().length)), then: 'close' }
    case 13:
      return { bytes: `HTTP/1.0 200 OK\r\n\r\n${body}`, then: 'close' }
    case 14:
      return { bytes: ok('x-nul: a\0b\r\n') + extra(), then: 'keep' }
    case 15:
      return { bytes: ok('x-folded: a\r\n b\r\n') + extra(), then: 'keep' }
    case 16:
      return { bytes: ok(`x-big: ${'a'.repeat(70 * 1024)}\r\n`), then: 'keep' }
    case 17:
      return { bytes: `HTTP/1.1 2000 OK\r\ncontent-length: ${poison.length}\r\n\r\n${poison}`, then: 'keep' }
    case 18:
      return { bytes: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nx-trailer: 1\r\n\r\n`, then: 'keep' }
    case 19:
      return { bytes: `HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${extra()}`, then: 'keep' }
    case 20:
      return { bytes: `HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${extra()}`, then: 'keep' }
    case 21: {
      const first = `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\n\n${body}`
      return { bytes: first + extra(), then: 'keep', complete: first.length }
    }
    default:
      return { bytes: `garbage\r\n\r\n${poison}`, then: 'keep' }
  }
}

// The upstream: requests are heads only (every request is a GET without a body), one at a time
// per connection (undici does not pipeline by default), but read as a stream all the same.
const upstream = createServer((socket: Socket) => {
  let pending = ''
  socket.on('error', () => {})
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => {
    pending += chunk
    for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, end)
      pending = pending.slice(end + 4)
      const id = /^GET \/p\/(\d+) /.exec(head)?.[1]
      if (id === undefined) return socket.destroy()
      const { bytes, then, complete } = answer(id, seededRandom(Number(id)))
      // Split at a random point now and then, so the gateway reads a response in two parts.
      const random = seededRandom(Number(id) + 1)
      let cut = random(3) === 0 ? random(bytes.length) : bytes.length
      // Never right after a complete first response, though: bytes that come a while after a
      // response ended, once the next request may be on its way, are that request's answer to any
      // HTTP/1.1 client (RFC 9112 §9.3: responses are matched to requests by order alone). No
      // intermediary can tell them apart; one that arrives with the end of the first is caught.
      if (cut === complete) cut--
      socket.write(bytes.slice(0, cut), 'latin1')
      if (cut < bytes.length) setTimeout(() => socket.writable && socket.write(bytes.slice(cut), 'latin1'), random(5))
      if (then === 'close') socket.end()
      if (then === 'stall') return // the gateway's bodyTimeoutMs ends it
    }
  })
})
const http2 = process.env.FUZZ_UPSTREAM === 'http2'
const clientHttp2 = process.env.FUZZ_CLIENT === 'http2'
let upstreamUrl: string
let close: () => void
if (http2) {
  const started = await startBrokenHttp2Upstream()
  upstreamUrl = started.url
  close = () => started.server.close()
} else {
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  close = () => upstream.close()
}

const gateway = await startGateway(
  baseConfig({
    upstreams: [{ id: 'raw', url: upstreamUrl, http2, connections: 2, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 }],
    routes: [{ id: 'raw', path: '/p/**', methods: ['GET', 'POST'], upstream: 'raw', auth: 'public' }],
    // With FUZZ_CLIENT=http2 the clients speak HTTP/2 to an h2c listener.
    listeners: [{ host: '127.0.0.1', port: 0 }, ...(clientHttp2 ? [{ host: '127.0.0.1', port: 0, h2c: true }] : [])],
    ...(clientHttp2 ? { security: HTTP2_LISTENERS_ACKNOWLEDGED } : {}),
    logging: { level: 'info', events: 'stdout', access: false },
  }),
)

const agent = new Agent({ keepAlive: true, maxSockets: 16 })
// HTTP/2 clients: four connections, each carrying many requests' streams; one that ends is replaced.
const h2cUrl = clientHttp2 ? (gateway.lines.find((l) => l.msg === 'listening')!.urls as string[])[1] : ''
const sessions: ClientHttp2Session[] = []
const sessionFor = (id: number): ClientHttp2Session => {
  const slot = id % 4
  const current = sessions[slot]
  if (current !== undefined && !current.closed && !current.destroyed) return current
  const session = connectHttp2(h2cUrl)
  session.on('error', () => {})
  sessions[slot] = session
  return session
}

/** One request over HTTP/2: its status and body, or status 0 when the stream ended without a head. */
function http2Request(id: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    let status = 0
    let body = ''
    const stream = sessionFor(Number(id)).request({ ':method': http2 ? 'POST' : 'GET', ':path': `/p/${id}` }, { endStream: !http2 })
    stream.on('response', (headers) => (status = Number(headers[':status'])))
    stream.setEncoding('latin1')
    stream.on('data', (c: string) => (body += c))
    stream.on('error', () => {})
    stream.on('close', () => resolve({ status, body }))
    if (http2) stream.end(id)
  })
}
const statuses = new Map<number, number>()
const violations: string[] = []

/** One request, id = seed; its answer must be its own, or an error. */
async function fuzzRequest(seed: number): Promise<void> {
  const id = String(seed)
  const { status, body } = clientHttp2 ? await http2Request(id) : await new Promise<{ status: number; body: string }>((resolve) => {
    // The HTTP/2 upstream learns the id from the body (the path is HPACK-coded).
    const req = request(`${gateway.url}/p/${id}`, { agent, method: http2 ? 'POST' : 'GET' }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
      res.on('error', () => resolve({ status: res.statusCode!, body }))
    })
    req.on('error', () => resolve({ status: 0, body: '' }))
    req.end(http2 ? id : undefined)
  })
  statuses.set(status, (statuses.get(status) ?? 0) + 1)
  const ids = [...body.matchAll(/\[id=(\d+)\]/g)].map((m) => m[1])
  if (body.includes('POISON') || ids.some((other) => other !== id)) violations.push(`request ${id} got ${status} with another answer's bytes: ${JSON.stringify(body.slice(0, 200))}`)
}

const code = await runFuzz({
  label: `${clientHttp2 ? h2cUrl : gateway.url} (HTTP/${clientHttp2 ? '2' : '1.1'} clients) with a broken HTTP/${http2 ? '2' : '1.1'} upstream`,
  gateway,
  connection: fuzzRequest,
  violation: () => violations[0],
  probeUrl: `${gateway.url}/readyz`,
  summary: () => `the clients got ${[...statuses].sort((a, b) => a[0] - b[0]).map(([status, n]) => `${n}× ${status || 'no answer'}`).join(', ')}`,
})
agent.destroy()
for (const session of sessions) session.destroy()
close()
process.exit(code)
