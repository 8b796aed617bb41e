// `npm run fuzz:http1`: throws seeded random HTTP/1.1 byte streams at a listener and checks that
// the gateway survives them and lets nothing through that it should not (a request smuggled in a
// body, a path no public route has, a spoofed identity header). Not part of `npm test` (it runs
// for minutes and its finds may depend on timing); what it finds gets a test of its own.
//
// The gateway and its upstreams are those of scripts/fuzz-harness.ts (`startFuzzSetup`): a plain
// listener, or HTTPS when FUZZ_TLS=1. Each connection sends one to six requests back to back
// (pipelined), each put together from random parts: methods, targets (path tricks, absolute
// forms, `*`, long ones), versions, Host headers (none, two, foreign), every framing a smuggler
// tries (Content-Length right, short, long, doubled or malformed; chunked right, with extensions
// and trailers, or broken; both at once; Transfer-Encoding spelled oddly or folded), Upgrade and
// Expect, tokens (valid but short of the scope, garbage, doubled), spoofed identity headers, bare
// LF line ends, NUL and bare CR in headers, and bodies that carry a request of their own. The
// bytes go out in a few writes at random points, with pauses; then the client ends, leaves at
// once or waits a moment. FUZZ_SEED, FUZZ_CONNECTIONS and FUZZ_PARALLEL as in
// scripts/fuzz-harness.ts; a seed replays with FUZZ_SEED=<seed> FUZZ_CONNECTIONS=1 FUZZ_PARALLEL=1.
import { seededRandom } from '../test/helpers/seeded.js'
import { connectTo, LOCKED_HOST, runFuzz, sendThenLeave, SPOOF, startFuzzSetup } from './fuzz-harness.js'

const setup = await startFuzzSetup('http1')
const host = setup.url.host

/** A request the upstream would take as its own if the gateway's framing and the upstream's disagreed. */
const SMUGGLED = [
  'GET /s/smuggled HTTP/1.1\r\nhost: a\r\n\r\n', 'POST /s/smuggled HTTP/1.1\r\ncontent-length: 0\r\n\r\n', '0\r\n\r\nGET /s/smuggled HTTP/1.1\r\nhost: a\r\n\r\n',
  // A masked WebSocket text frame ("hello"), as a tunnel carries.
  '\x81\x85\x01\x02\x03\x04\x69\x67\x6f\x68\x6e',
]
// Each part is mostly one a public route takes (so most requests reach an upstream, where a
// smuggled one would show), and now and then a trick.
const METHODS = ['GET', 'GET', 'POST', 'PUT']
const ODD_METHODS = ['HEAD', 'OPTIONS', 'DELETE', 'CONNECT', 'get', 'G ET', 'PRI', '']
const TARGETS = ['/p/x', '/p/x', '/p/early', '/p/close', '/p/slow', '/p/a?b=c&d', '/h/x', '/h/svc/M', '/g/svc/M', '/w/x', '/w/x']
const HANDSHAKE = ['connection: upgrade', 'upgrade: websocket', 'sec-websocket-version: 13', 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==']
const ODD_TARGETS = [
  '/s/secret', '/p/%2e%2e/s/secret', '/p/..%2fs/secret', '/p/%252e%252e/s/x', '//s/secret', '/P/x', '/p/x;/../../s/x', '/p/..\\s\\x', '/w/x',
  '*', `http://${host}/p/x`, 'http://evil/s/secret', '/p/x#f', `/p/${'a'.repeat(9000)}`, '/nowhere', 'p/x', '/p/x%00', '/p/ x', 'example.com:443',
]
const ODD_VERSIONS = ['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 x', '']
/** Spellings of the host whose routes need a scope, and of hosts that only look like it. */
const LOCKED_HOSTS = [
  LOCKED_HOST, 'LOCKED.fuzz', `${LOCKED_HOST}.`, `${LOCKED_HOST}:80`, `${LOCKED_HOST}.:1`, 'locked%2efuzz', 'LOCKED%2Efuzz', '%6cocked.fuzz',
  `x.${LOCKED_HOST}`, `${LOCKED_HOST}..`, `.${LOCKED_HOST}`, `${LOCKED_HOST}\t`, `${LOCKED_HOST} `, `[${LOCKED_HOST}]`, `${LOCKED_HOST}@evil`, `evil@${LOCKED_HOST}`,
]

/** One request's bytes; `pick(list)` and `random(n)` come from the connection's seed. */
function request(random: (n: number) => number): string {
  const pick = <T>(list: readonly T[]): T => list[random(list.length)]
  const mostly = <T>(usual: readonly T[], odd: readonly T[]): T => (random(10) < 8 ? pick(usual) : pick(odd))
  const eol = random(30) === 0 ? '\n' : '\r\n'
  const target = mostly(TARGETS, ODD_TARGETS)
  const lines: string[] = [`${mostly(METHODS, ODD_METHODS)} ${target} ${mostly(['HTTP/1.1'], ODD_VERSIONS)}`]
  // A WebSocket route mostly gets handshakes; what follows one (the next request's bytes) is the tunnel's.
  if (target.startsWith('/w/') && random(4) > 0) lines.push(...HANDSHAKE)
  const hosts = random(20)
  if (hosts > 3) lines.push(`host: ${host}`)
  else if (hosts === 3) lines.push(`host: ${pick(LOCKED_HOSTS)}`)
  else if (hosts === 2) lines.push(`host: ${host}`, `host: ${pick(LOCKED_HOSTS)}`)
  else if (hosts === 1) lines.push(`host: ${random(2) ? host : pick(LOCKED_HOSTS)}`, 'host: evil')
  // The body, and the framing that announces it (honestly or not).
  const kind = random(8)
  const body = kind < 3 ? '' : kind < 5 ? pick(SMUGGLED) : kind < 7 ? 'x'.repeat(random(10) === 0 ? 4000 + random(2000) : random(500)) : String.fromCharCode(...Array.from({ length: random(64) }, () => random(256)))
  const chunked = (): string => {
    if (body.length === 0) return '0\r\n\r\n'
    const cut = random(body.length)
    const ext = random(4) === 0 ? ';ext=1' : ''
    const trailer = random(4) === 0 ? 'x-trailer: 1\r\n' : ''
    return `${cut.toString(16)}${ext}\r\n${body.slice(0, cut)}\r\n${(body.length - cut).toString(16)}\r\n${body.slice(cut)}\r\n0\r\n${trailer}\r\n`
  }
  let payload = ''
  // Three in four requests are framed honestly; the rest try what smugglers try.
  switch (random(4) > 0 ? random(5) : 5 + random(9)) {
    case 0:
      if (random(4) === 0) payload = body // no framing: the body, if any, is the next request as far as the gateway knows
      break
    case 1:
    case 2:
      lines.push(`content-length: ${body.length}`)
      payload = body
      break
    case 3:
      lines.push('transfer-encoding: chunked')
      payload = chunked()
      break
    case 4:
      lines.push(`content-length: ${body.length}`, 'expect: 100-continue')
      payload = body
      break
    case 5:
      lines.push(`content-length: ${Math.max(0, body.length - 1 - random(10))}`)
      payload = body
      break
    case 6:
      lines.push(`content-length: ${body.length + 1 + random(10)}`)
      payload = body
      break
    case 7:
      lines.push(`content-length: ${body.length}`, 'transfer-encoding: chunked')
      payload = random(2) === 0 ? chunked() : body
      break
    case 8:
      lines.push(pick([`content-length: ${body.length}`, 'transfer-encoding: chunked']), `content-length: ${random(100)}`)
      payload = body
      break
    case 9:
    case 10:
      lines.push(pick(['transfer-encoding: chunked, identity', 'transfer-encoding:  chunked', 'transfer-encoding: xchunked', 'transfer-encoding: identity', 'transfer-encoding: chunked\t', 'transfer-encoding:\r\n chunked', 'Transfer-Encoding: CHUNKED', 'transfer-encoding: gzip, chunked', 'transfer-encoding : chunked']))
      payload = random(2) === 0 ? chunked() : body
      break
    case 11:
      lines.push(pick(['content-length: +5', 'content-length: -1', 'content-length: 5 5', 'content-length: 0x5', 'content-length: 99999999999999999999', 'content-length: 5, 5', 'content-length:']))
      payload = body
      break
    default:
      lines.push('transfer-encoding: chunked')
      payload = pick(['zz\r\nabc\r\n0\r\n\r\n', 'ffffffffffffffffff\r\nabc\r\n', `3\r\nabcdef\r\n0\r\n\r\n`, '3\nabc\n0\n\n', '5\r\nabc', `1;${'e'.repeat(5000)}\r\na\r\n0\r\n\r\n`]) + body
  }
  // Everything else a request may carry, each now and then: mostly what clients send, sometimes
  // what no parser should take.
  const extras: Array<() => string[]> = [
    () => [pick(['connection: close', 'connection: keep-alive', 'connection: upgrade', 'connection: close, x-user-id', 'connection: te, x-forwarded-for'])],
    () => HANDSHAKE,
    () => [pick(['upgrade: h2c', 'upgrade: websocket', 'upgrade: tls/1.2'])],
    () => [`authorization: Bearer ${setup.token}`],
    () => [pick(['authorization: Bearer garbage', 'authorization: Basic Zm9vOmJhcg==', 'authorization: Bearer', `authorization: Bearer ${setup.token}x`])],
    () => [`authorization: Bearer ${setup.token}`, 'authorization: Bearer other'],
    () => [`x-user-id: ${SPOOF}`, `x-forwarded-user: ${SPOOF}`, `X-Auth-Subject: ${SPOOF}`],
    () => [`x-scopes: admin ${SPOOF}`],
    () => ['x-forwarded-for: 10.0.0.1', 'x-request-id: fuzz', 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
    () => [pick(['content-type: application/grpc-web-text', 'content-type: application/grpc-web+proto', 'content-type: application/json'])],
    () => ['te: trailers'],
  ]
  const hostile: Array<() => string[]> = [
    () => ['x-folded: a', ' b'],
    () => [`x-nul: a${pick(['\0', '\r', '\x7f', '\u00ff'])}b`],
    () => ['bad header: x'],
    () => [`x-long: ${'a'.repeat(random(2) === 0 ? 3000 : 20000)}`],
    () => Array.from({ length: 120 }, (_, i) => `x-h${i}: ${i}`),
  ]
  for (let i = random(4); i > 0; i--) lines.push(...(random(10) > 0 ? pick(extras)() : pick(hostile)()))
  return lines.join(eol) + eol + eol + payload
}

/** The gateway's answers by status, for the last line (a status line split over two reads is missed). */
const answers = new Map<string, number>()
const STATUS_LINE = /HTTP\/1\.[01] (\d{3}) /g

/** One connection: the seed decides every request, write and pause. */
async function fuzzConnection(seed: number): Promise<void> {
  const random = seededRandom(seed)
  let bytes = ''
  for (let i = 1 + random(6); i > 0; i--) bytes += request(random)
  const data = Buffer.from(bytes, 'latin1')
  const cuts = Array.from({ length: random(4) }, () => random(data.length)).sort((a, b) => a - b)
  const socket = await connectTo(setup, 'http/1.1')
  socket.on('data', (chunk: Buffer) => {
    for (const [, status] of chunk.toString('latin1').matchAll(STATUS_LINE)) answers.set(status, (answers.get(status) ?? 0) + 1)
  })
  const ends = [...cuts, data.length]
  await sendThenLeave(socket, ends.map((to, i) => data.subarray(i === 0 ? 0 : ends[i - 1], to)), random, 20, 400)
}

const code = await runFuzz({
  label: `${setup.url.origin} over HTTP/1.1${setup.tls ? ' (TLS)' : ''}`,
  gateway: setup.gateway,
  connection: fuzzConnection,
  violation: setup.violation,
  summary: () => `the gateway answered ${[...answers].sort().map(([status, n]) => `${n}× ${status}`).join(', ')}; ${setup.summary()}`,
  probeUrl: `${setup.gateway.url}/p/after-fuzzing`,
})
await setup.close()
process.exit(code)
