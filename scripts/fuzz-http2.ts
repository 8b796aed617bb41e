// `npm run fuzz:http2`: throws seeded random HTTP/2 frame sequences at an HTTP/2 listener and
// checks that the gateway survives them. Not part of `npm test` (it runs for minutes and its finds are
// timing-dependent); what it found is covered by tests of its own (docs/forwarding.md, "HTTP/2").
//
// The gateway and its upstreams are those of scripts/fuzz-harness.ts (`startFuzzSetup`): an h2c
// listener, or HTTPS with ALPN h2 when FUZZ_TLS=1. Each connection sends the preface,
// then up to 60 frames in a few writes: streams opened (requests with and without a body, gRPC,
// gRPC-Web, WebSocket handshakes, requests refused for their path, method or authority), DATA,
// RST_STREAM, WINDOW_UPDATE, PRIORITY, trailers, PING, GOAWAY and frames of random type; then it
// leaves. Connections run FUZZ_PARALLEL at a time.
// FUZZ_SEED, FUZZ_CONNECTIONS and FUZZ_PARALLEL as in scripts/fuzz-harness.ts. Fails (exit 1) when
// the gateway's process ends, when its memory grew by more than 500 MiB, when an upstream saw a
// request it must never get, or when the gateway no longer answers; it prints the seeds of the
// connections in flight then. A seed replays with FUZZ_SEED=<seed> FUZZ_CONNECTIONS=1
// FUZZ_PARALLEL=1 (a find that needs earlier connections, or timing, may need the whole run again).
import { frame, headerBlock, PREFACE, u32 } from '../test/helpers/h2-frames.js'
import { seededRandom } from '../test/helpers/seeded.js'
import { connectTo, LOCKED_HOST, runFuzz, sendThenLeave, SPOOF, startFuzzSetup } from './fuzz-harness.js'

const setup = await startFuzzSetup('http2')
const authority = setup.url.host
const scheme = setup.tls ? 'https' : 'http'

type Fields = Array<readonly [string, string]>
const request = (method: string, path: string, ...more: Fields): Fields => [[':method', method], [':scheme', scheme], [':authority', authority], [':path', path], ...more]
const HEADER_BLOCKS = [
  request('GET', '/p/x'),
  request('POST', '/p/up', ['content-length', '10']),
  request('POST', '/p/up'),
  [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', scheme], [':authority', authority], [':path', '/w/x'], ['sec-websocket-version', '13']] as Fields,
  [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', scheme], [':authority', authority], [':path', '/p/x'], ['sec-websocket-version', '13']] as Fields,
  [[':method', 'CONNECT'], [':authority', authority]] as Fields,
  request('POST', '/g/svc/M', ['content-type', 'application/grpc-web-text']),
  request('POST', '/g/svc/M', ['content-type', 'application/grpc-web+proto']),
  request('POST', '/h/svc/M', ['content-type', 'application/grpc'], ['te', 'trailers']),
  request('GET', '/h/x'),
  [[':method', 'GET'], [':scheme', scheme], [':authority', 'elsewhere'], [':path', '/p/x'], ['host', 'other']] as Fields,
  request('GET', '/p/%2e%2e/x', ['authorization', 'Bearer a'], ['authorization', 'Bearer b']),
  request('GET', '/nowhere'),
  request('GET', '/s/x', ['authorization', `Bearer ${setup.token}`]),
  request('POST', '/s/x', ['x-user-id', SPOOF]),
  request('GET', '/p/x', ['x-user-id', SPOOF], ['x-forwarded-user', SPOOF]),
  request('OPTIONS', '*'),
  // The host whose routes need a scope, spelled as a service might still read it.
  ...[LOCKED_HOST, `LOCKED.fuzz:443`, `${LOCKED_HOST}.`, 'locked%2efuzz'].flatMap((name) => [
    [[':method', 'GET'], [':scheme', scheme], [':authority', name], [':path', '/p/x']] as Fields,
    [[':method', 'GET'], [':scheme', scheme], [':authority', authority], [':path', '/h/x'], ['host', name]] as Fields,
    [[':method', 'GET'], [':scheme', scheme], [':path', '/p/x'], ['host', name]] as Fields,
    [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', scheme], [':authority', name], [':path', '/w/x'], ['sec-websocket-version', '13']] as Fields,
  ]),
].map(headerBlock)
const TRAILER_BLOCKS = ([[['x-trailer', '1']], [['grpc-status', '0']], [[':path', '/x']], [['content-length', '5']]] as Fields[]).map(headerBlock)

/** One connection: the seed decides every frame, write and pause. */
async function fuzzConnection(seed: number): Promise<void> {
  const random = seededRandom(seed)
  const writes: Buffer[][] = [[Buffer.from(PREFACE), frame(4, 0, 0, Buffer.alloc(0)), frame(4, 1, 0, Buffer.alloc(0))]]
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
  const socket = await connectTo(setup, 'h2')
  await sendThenLeave(socket, writes.map((part) => Buffer.concat(part)), random, 4, 300)
}

const code = await runFuzz({
  label: `${setup.url.origin} over HTTP/2 (${setup.tls ? 'TLS' : 'h2c'})`,
  gateway: setup.gateway,
  connection: fuzzConnection,
  violation: setup.violation,
  summary: setup.summary,
  probeUrl: `${setup.gateway.url}/p/after-fuzzing`,
})
await setup.close()
process.exit(code)
