// `npm run fuzz:http2`: throws seeded random HTTP/2 frame sequences at an h2c listener and checks
// that the gateway survives them. Not part of `npm test` (it runs for minutes and its finds are
// timing-dependent); what it found is covered by tests of its own (docs/forwarding.md, "HTTP/2").
//
// The gateway (the built CLI, as the tests start it) has routes to an HTTP/1.1 upstream, an HTTP/2
// upstream (plain and gRPC-Web calls) and a WebSocket upstream. Each connection sends the preface,
// then up to 60 frames in a few writes: streams opened (requests with and without a body, gRPC,
// gRPC-Web, WebSocket handshakes, requests refused for their path, method or authority), DATA,
// RST_STREAM, WINDOW_UPDATE, PRIORITY, trailers, PING, GOAWAY and frames of random type; then it
// leaves. Connections run FUZZ_PARALLEL at a time.
//   env FUZZ_SEED          the first connection's seed (default: from the clock; printed)
//   env FUZZ_CONNECTIONS   how many connections (default 1000)
//   env FUZZ_PARALLEL      how many at once (default 4)
// Fails (exit 1) when the gateway's process ends, when its memory grew by more than 500 MiB, or
// when it no longer answers; it prints the seeds of the connections in flight then. A seed
// replays with FUZZ_SEED=<seed> FUZZ_CONNECTIONS=1 FUZZ_PARALLEL=1 (a find that needs earlier
// connections, or timing, may need the whole run again).
import { connect } from 'node:net'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer as createHttp1Server } from 'node:http'
import { createServer as createHttp2Server, type Http2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { baseConfig, startGateway } from '../test/helpers/gateway.js'
import { startUpstream } from '../test/helpers/upstream.js'
import { frame, headerBlock } from '../test/helpers/h2-frames.js'
import { seededRandom } from '../test/helpers/seeded.js'

const CONNECTIONS = Number(process.env.FUZZ_CONNECTIONS ?? 1000)
const PARALLEL = Number(process.env.FUZZ_PARALLEL ?? 4)
const FIRST_SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9)
const MAX_GROWTH_KIB = 500 * 1024

async function listen(server: { listen: (port: number, host: string, cb: () => void) => unknown; address: () => unknown }): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const http1 = await startUpstream()
// An HTTP/2 upstream: a gRPC answer (one message, then trailers) to gRPC calls, an echo otherwise.
const http2: Http2Server = createHttp2Server((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c)).on('error', () => {})
  req.on('end', () => {
    if (String(req.headers['content-type'] ?? '').startsWith('application/grpc')) {
      res.writeHead(200, { 'content-type': 'application/grpc' })
      res.write(Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]))
      res.addTrailers({ 'grpc-status': '0' })
      res.end()
    } else res.end(Buffer.concat(chunks))
  })
})
http2.on('sessionError', () => {})
const http2Url = await listen(http2)
const websocketHttp = createHttp1Server((_req, res) => res.end('no'))
const wss = new WebSocketServer({ noServer: true })
websocketHttp.on('upgrade', (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (m) => ws.send(m))
    ws.on('error', () => {})
  }),
)
const websocketUrl = await listen(websocketHttp)

const gw = await startGateway(
  baseConfig({
    listeners: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, h2c: true }],
    server: { maxBodyBytes: 4096, headersTimeoutMs: 1000, requestTimeoutMs: 1500 },
    upstreams: [
      { id: 'plain', url: http1.url },
      { id: 'h2', url: http2Url, http2: true },
      { id: 'ws', url: websocketUrl },
    ],
    routes: [
      { id: 'plain', path: '/p/**', methods: ['GET', 'POST', 'PUT'], upstream: 'plain', auth: 'public' },
      { id: 'ws', path: '/w/**', methods: ['GET'], upstream: 'ws', auth: 'public', websocket: true },
      { id: 'grpc-web', path: '/g/**', methods: ['POST'], upstream: 'h2', auth: 'public', grpcWeb: true },
      { id: 'h2', path: '/h/**', methods: ['GET', 'POST'], upstream: 'h2', auth: 'public' },
    ],
  }),
)
const h2cUrl = new URL((gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1])
const authority = h2cUrl.host

type Fields = Array<readonly [string, string]>
const request = (method: string, path: string, ...more: Fields): Fields => [[':method', method], [':scheme', 'http'], [':authority', authority], [':path', path], ...more]
const HEADER_BLOCKS = [
  request('GET', '/p/x'),
  request('POST', '/p/up', ['content-length', '10']),
  request('POST', '/p/up'),
  [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', authority], [':path', '/w/x'], ['sec-websocket-version', '13']] as Fields,
  [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'http'], [':authority', authority], [':path', '/p/x'], ['sec-websocket-version', '13']] as Fields,
  [[':method', 'CONNECT'], [':authority', authority]] as Fields,
  request('POST', '/g/svc/M', ['content-type', 'application/grpc-web-text']),
  request('POST', '/g/svc/M', ['content-type', 'application/grpc-web+proto']),
  request('POST', '/h/svc/M', ['content-type', 'application/grpc'], ['te', 'trailers']),
  request('GET', '/h/x'),
  [[':method', 'GET'], [':scheme', 'http'], [':authority', 'elsewhere'], [':path', '/p/x'], ['host', 'other']] as Fields,
  request('GET', '/p/%2e%2e/x', ['authorization', 'Bearer a'], ['authorization', 'Bearer b']),
  request('GET', '/nowhere'),
  request('OPTIONS', '*'),
].map(headerBlock)
const TRAILER_BLOCKS = ([[['x-trailer', '1']], [['grpc-status', '0']], [[':path', '/x']], [['content-length', '5']]] as Fields[]).map(headerBlock)

const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(value >>> 0, 0)
  return b
}

/** One connection: the seed decides every frame, write and pause. */
async function fuzzConnection(seed: number): Promise<void> {
  const random = seededRandom(seed)
  const writes: Buffer[][] = [[Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(4, 1, 0, Buffer.alloc(0))]]
  const add = (b: Buffer): number => writes.at(-1)!.push(b)
  const open: number[] = []
  let next = 1
  for (let op = 0, ops = 1 + random(60); op < ops; op++) {
    const stream = open.length > 0 && random(10) < 9 ? open[random(open.length)] : random(20)
    const kind = random(100)
    if (kind < 30) {
      // A new stream, now and then with an id out of order, or its block split over CONTINUATION.
      const id = random(20) === 0 ? random(next + 4) : next
      next += 2
      const block = HEADER_BLOCKS[random(HEADER_BLOCKS.length)]
      const end = random(5) < 2 ? 1 : 0
      if (random(7) === 0 && block.length > 4) {
        const cut = 1 + random(block.length - 1)
        add(frame(1, end, id, block.subarray(0, cut)))
        add(frame(9, 4, random(10) === 0 ? id + 2 : id, block.subarray(cut)))
      } else add(frame(1, 4 | end, id, block))
      if (end === 0) open.push(id)
    } else if (kind < 55) {
      const payload = Buffer.alloc(random(10) < 7 ? random(200) : random(9000), random(256))
      if (random(10) === 0 && payload.length > 0) {
        payload[0] = random(payload.length + 5) // a pad length that may not fit
        add(frame(0, 0x8 | random(2), stream, payload))
      } else add(frame(0, random(10) < 3 ? 1 : 0, stream, payload))
    } else if (kind < 68) add(frame(3, 0, random(20) === 0 ? 0 : stream, u32(random(14))))
    else if (kind < 74) add(frame(8, 0, random(2) === 0 ? 0 : stream, u32(random(5) === 0 ? 0 : random(2 ** 31))))
    else if (kind < 78) add(frame(2, 0, stream, Buffer.concat([u32(random(3) === 0 ? stream : random(30)), Buffer.from([random(256)])])))
    else if (kind < 84) add(frame(1, 5, stream, TRAILER_BLOCKS[random(TRAILER_BLOCKS.length)]))
    else if (kind < 88) add(frame(6, random(5) === 0 ? 1 : 0, 0, Buffer.alloc(8)))
    else if (kind < 90) add(frame(7, 0, 0, Buffer.concat([u32(random(20)), u32(random(14))])))
    else if (kind < 94) add(frame(random(16), random(256), random(3) === 0 ? 0 : stream, Buffer.alloc(random(40), random(256))))
    // A masked WebSocket text frame ("hello"), as a tunnel would carry.
    else add(frame(0, 0, stream, Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e])))
    if (random(10) < 3) writes.push([])
  }
  const socket = connect(Number(h2cUrl.port), h2cUrl.hostname)
  socket.on('error', () => {})
  socket.resume()
  await once(socket, 'connect').catch(() => undefined)
  for (const part of writes) {
    if (socket.destroyed || !socket.writable) break
    socket.write(Buffer.concat(part))
    if (random(2) === 0) await new Promise((r) => setTimeout(r, random(4)))
  }
  const ending = random(3)
  if (ending === 1) socket.end()
  if (ending > 0) await new Promise((r) => setTimeout(r, random(300)))
  socket.destroy()
}

const rssKiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))?.[1] ?? 0)
const linux = process.platform === 'linux'
const startKiB = linux ? rssKiB() : 0
const inFlight = new Set<number>()
let done = 0
let failure: string | undefined

async function worker(first: number): Promise<void> {
  for (let i = first; i < CONNECTIONS && failure === undefined; i += PARALLEL) {
    const seed = FIRST_SEED + i
    inFlight.add(seed)
    await fuzzConnection(seed)
    done++
    if (!gw.running()) failure = `the gateway's process ended (${gw.child.signalCode ?? `exit ${gw.child.exitCode}`})`
    else if (linux && rssKiB() - startKiB > MAX_GROWTH_KIB) failure = `the gateway's memory grew by ${Math.round((rssKiB() - startKiB) / 1024)} MiB`
    if (failure === undefined) inFlight.delete(seed)
  }
}

process.stdout.write(`fuzzing ${h2cUrl.origin} with ${CONNECTIONS} connections from seed ${FIRST_SEED}, ${PARALLEL} at a time\n`)
await Promise.all(Array.from({ length: PARALLEL }, (_, w) => worker(w)))
if (failure === undefined) {
  await new Promise((r) => setTimeout(r, 500))
  if (!gw.running()) failure = "the gateway's process ended"
  else {
    const answer = await fetch(`${gw.url}/p/after-fuzzing`).catch(() => undefined)
    if (answer?.status !== 200) failure = `the gateway no longer answers (${answer?.status ?? 'no answer'})`
  }
}
const grown = linux && gw.running() ? ` memory grew by ${Math.round((rssKiB() - startKiB) / 1024)} MiB;` : ''
process.stdout.write(`${done} connections;${grown} ${failure === undefined ? 'the gateway survived' : `FAILED: ${failure}; seeds in flight: ${[...inFlight].join(', ')}`}\n`)
if (failure !== undefined && gw.stderr()) process.stdout.write(`gateway stderr:\n${gw.stderr().slice(0, 4000)}\n`)
if (gw.running()) await gw.stop()
await http1.close()
http2.close()
websocketHttp.close()
process.exit(failure === undefined ? 0 : 1)
