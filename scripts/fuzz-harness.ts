// What the fuzzers (`npm run fuzz:http1`, `npm run fuzz:http2`) share: connections run a few at a
// time, each decided by its seed; after each one, the gateway must still run, its memory must not
// have grown past a bound, and nothing the target watches (its upstreams) may have seen a
// violation. After the last, the gateway must still answer. Prints the seeds to replay on failure.
//   env FUZZ_SEED          the first connection's seed (default: from the clock; printed)
//   env FUZZ_CONNECTIONS   how many connections (default 1000)
//   env FUZZ_PARALLEL      how many at once (default 4)
//   env FUZZ_RELOAD_EVERY  send the gateway SIGHUP (a config reload) after every this many
//                          connections (default 0: never), so reloads land among requests in flight
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttp1Server, type IncomingHttpHeaders } from 'node:http'
import { createServer as createHttp2Server } from 'node:http2'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { WebSocketServer } from 'ws'
import { listenerFiles } from '../test/helpers/certs.js'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../test/helpers/gateway.js'
import { startKeyServer } from '../test/helpers/keys.js'

const MAX_GROWTH_KIB = 500 * 1024

export interface FuzzTarget {
  /** What is fuzzed, for the first line ("http://127.0.0.1:1234 over HTTP/1.1"). */
  readonly label: string
  readonly gateway: StartedGateway
  /** One connection: the seed decides everything it sends, and when. */
  connection(seed: number): Promise<void>
  /** The first violation an upstream saw (a request it must never get), if any. */
  violation(): string | undefined
  /** A URL that must answer 200 once the run is over. */
  readonly probeUrl: string
  /** What the upstreams saw, for the last line (proof the fuzzed requests got through at all). */
  summary(): string
}

/** Runs the connections; resolves with the process exit code (0: the gateway survived). */
export async function runFuzz(target: FuzzTarget): Promise<number> {
  const connections = Number(process.env.FUZZ_CONNECTIONS ?? 1000)
  const parallel = Number(process.env.FUZZ_PARALLEL ?? 4)
  const firstSeed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9)
  const reloadEvery = Number(process.env.FUZZ_RELOAD_EVERY ?? 0)
  let reloads = 0
  const gw = target.gateway
  const linux = process.platform === 'linux'
  const rssKiB = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'))?.[1] ?? 0)
  const startKiB = linux ? rssKiB() : 0
  const inFlight = new Set<number>()
  let done = 0
  let failure: string | undefined

  const check = (): string | undefined => {
    if (!gw.running()) return `the gateway's process ended (${gw.child.signalCode ?? `exit ${gw.child.exitCode}`})`
    if (linux && rssKiB() - startKiB > MAX_GROWTH_KIB) return `the gateway's memory grew by ${Math.round((rssKiB() - startKiB) / 1024)} MiB`
    return target.violation()
  }
  const worker = async (first: number): Promise<void> => {
    for (let i = first; i < connections && failure === undefined; i += parallel) {
      const seed = firstSeed + i
      inFlight.add(seed)
      await target.connection(seed)
      done++
      if (reloadEvery > 0 && done % reloadEvery === 0 && gw.running()) {
        gw.child.kill('SIGHUP')
        reloads++
      }
      failure ??= check()
      if (failure === undefined) inFlight.delete(seed)
    }
  }

  process.stdout.write(`fuzzing ${target.label} with ${connections} connections from seed ${firstSeed}, ${parallel} at a time\n`)
  await Promise.all(Array.from({ length: parallel }, (_, w) => worker(w)))
  if (failure === undefined) {
    // Late effects: a crash or an upstream request that comes after the connections ended.
    await new Promise((r) => setTimeout(r, 500))
    failure = check()
    if (failure === undefined) {
      const answer = await fetch(target.probeUrl).catch(() => undefined)
      if (answer?.status !== 200) failure = `the gateway no longer answers (${answer?.status ?? 'no answer'})`
    }
  }
  const grown = linux && gw.running() ? ` memory grew by ${Math.round((rssKiB() - startKiB) / 1024)} MiB;` : ''
  const seeds = inFlight.size > 0 ? `seeds in flight: ${[...inFlight].join(', ')}` : 'after the last connection'
  const reloaded = reloads > 0 ? ` ${reloads} reloads;` : ''
  process.stdout.write(`${done} connections; ${target.summary()};${reloaded}${grown} ${failure === undefined ? 'the gateway survived' : `FAILED: ${failure}; ${seeds}`}\n`)
  if (failure !== undefined && gw.stderr()) process.stdout.write(`gateway stderr:\n${gw.stderr().slice(0, 4000)}\n`)
  if (gw.running()) await gw.stop()
  return failure === undefined ? 0 : 1
}

/** Path prefixes of the public routes; an upstream that sees any other path was reached around the gateway's checks. */
const PUBLIC_PREFIXES = ['/p/', '/g/', '/h/', '/w/']
/** The value the fuzzers put in spoofed identity headers; an upstream must never see it. */
export const SPOOF = 'fuzz-spoof'

export interface FuzzSetup {
  readonly gateway: StartedGateway
  /** The listener under fuzz: h2c or HTTPS with HTTP/2 for `http2`, else plain HTTP or HTTPS. */
  readonly url: URL
  readonly tls: boolean
  /** An access token of the issuer, with scope `read`: valid, but not for the `/s/` route (`admin`). */
  readonly token: string
  violation(): string | undefined
  /** How many requests each upstream got. */
  summary(): string
  close(): Promise<void>
}

/**
 * The gateway the fuzzers run against (the built CLI, as the tests start it), and its upstreams:
 * an HTTP/1.1 one (`/p/` routes public, `/s/` needs scope `admin`; `/p/early` answers before the
 * body, `/p/close` drops the connection, `/p/slow` answers late), an HTTP/2 one (`/h/`, and
 * gRPC-Web calls on `/g/`) and a WebSocket one (`/w/`). The host LOCKED_HOST has routes of its
 * own, which all need scope `admin`. All three upstreams check every request and handshake they
 * get: a public path, a host other than LOCKED_HOST (however spelled), the gateway's request id, no
 * spoofed identity header, never both Content-Length and Transfer-Encoding, and nothing their
 * parser refuses. One that fails is a
 * request the gateway let through that it should not have (a smuggled one, say): a violation.
 * With FUZZ_TLS=1 the fuzzed listener is HTTPS (with ALPN h2 for HTTP/2).
 */
/** A host whose routes all need a scope no fuzzed request has: nothing for it may reach an upstream. */
export const LOCKED_HOST = 'locked.fuzz'

/** Whether a forwarded Host names LOCKED_HOST in any spelling a service might read it in: letter
 *  case, a port, a trailing dot, percent-escapes. */
function namesLockedHost(value: string | string[] | undefined): boolean {
  if (typeof value !== 'string') return false
  let name = value
  try {
    name = decodeURIComponent(value)
  } catch {
    // not decodable: as it is
  }
  name = name.toLowerCase().replace(/:\d*$/, '').replace(/\.$/, '')
  return name === LOCKED_HOST
}

export async function startFuzzSetup(protocol: 'http1' | 'http2'): Promise<FuzzSetup> {
  const tls = process.env.FUZZ_TLS === '1'
  const violations: string[] = []
  const seen = { 'the HTTP/1.1': 0, 'the HTTP/2': 0, 'the WebSocket': 0 }
  const check = (where: keyof typeof seen, method: string, url: string, headers: IncomingHttpHeaders): void => {
    seen[where]++
    const got = `${where} upstream got ${method} ${url.slice(0, 80)}`
    if (!PUBLIC_PREFIXES.some((p) => url.startsWith(p))) violations.push(`${got}: a path no public route has`)
    if (namesLockedHost(headers['x-forwarded-host'])) violations.push(`${got} for the host ${String(headers['x-forwarded-host'])}, whose routes all need a scope`)
    if (headers['x-request-id'] === undefined) violations.push(`${got} without the gateway's request id`)
    if (headers['content-length'] !== undefined && headers['transfer-encoding'] !== undefined) violations.push(`${got} with Content-Length and Transfer-Encoding`)
    for (const [name, value] of Object.entries(headers)) if (String(value).includes(SPOOF)) violations.push(`${got} with the spoofed header ${name}`)
  }

  const http1 = createHttp1Server((req, res) => {
    check('the HTTP/1.1', req.method!, req.url!, req.headers)
    req.on('error', () => {})
    res.on('error', () => {})
    if (req.url!.startsWith('/p/close')) return req.socket.destroy()
    if (req.url!.startsWith('/p/early')) return res.end('early')
    let length = 0
    req.on('data', (c: Buffer) => (length += c.length))
    req.on('end', () => {
      const answer = () => res.end(`got ${length} bytes`)
      if (req.url!.startsWith('/p/slow')) setTimeout(answer, 200)
      else answer()
    })
  })
  http1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A connection the gateway cut mid-request ends the parser early; anything else it refused is malformed HTTP.
    if (err.code?.startsWith('HPE_') && err.code !== 'HPE_INVALID_EOF_STATE') violations.push(`the HTTP/1.1 upstream could not parse what the gateway sent (${err.code})`)
    socket.destroy()
  })
  // A gRPC answer (one message, then trailers) to gRPC calls, an echo otherwise.
  const http2 = createHttp2Server((req, res) => {
    check('the HTTP/2', req.method, req.url, req.headers)
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
  // Plain requests and handshakes alike are checked: a request smuggled through a tunnel shows here.
  const websocketHttp = createHttp1Server((req, res) => {
    check('the WebSocket', req.method!, req.url!, req.headers)
    res.end('no')
  })
  const wss = new WebSocketServer({ noServer: true })
  websocketHttp.on('upgrade', (req, socket, head) => {
    check('the WebSocket', req.method!, req.url!, req.headers)
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (m) => ws.send(m))
      ws.on('error', () => {})
    })
  })
  const [http1Url, http2Url, websocketUrl] = await Promise.all([http1, http2, websocketHttp].map(listen))
  const ks = await startKeyServer()

  const { dir } = await listenerFiles('portcullis-fuzz-')
  const fuzzed = tls
    ? { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: protocol === 'http2' } }
    : { host: '127.0.0.1', port: 0, h2c: protocol === 'http2' }
  const config = baseConfig({
    // The first listener (plain HTTP/1.1) answers the readiness and the last probes.
    listeners: [{ host: '127.0.0.1', port: 0 }, fuzzed],
    // The HTTP/2 fuzzer runs on an HTTP/2 listener whatever the runtime (lint rule listener-http2-vulnerable).
    ...(protocol === 'http2' ? { security: HTTP2_LISTENERS_ACKNOWLEDGED } : {}),
    server: { maxBodyBytes: 4096, maxHeaderBytes: 8192, headersTimeoutMs: 1000, requestTimeoutMs: 1500 },
    issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
    upstreams: [
      { id: 'plain', url: http1Url },
      { id: 'h2', url: http2Url, http2: true },
      { id: 'ws', url: websocketUrl },
    ],
    routes: [
      { id: 'plain', path: '/p/**', methods: ['GET', 'POST', 'PUT'], upstream: 'plain', auth: 'public' },
      { id: 'secret', path: '/s/**', methods: ['GET', 'POST'], upstream: 'plain', auth: 'required', scopes: { allOf: ['admin'] } },
      { id: 'ws', path: '/w/**', methods: ['GET'], upstream: 'ws', auth: 'public', websocket: true },
      { id: 'grpc-web', path: '/g/**', methods: ['POST'], upstream: 'h2', auth: 'public', grpcWeb: true },
      { id: 'h2', path: '/h/**', methods: ['GET', 'POST'], upstream: 'h2', auth: 'public' },
      // The same paths on LOCKED_HOST need a scope no fuzzed request has (routes by host).
      { id: 'locked', hosts: [LOCKED_HOST], path: '/**', methods: ['GET', 'POST', 'PUT'], upstream: 'plain', auth: 'required', scopes: { allOf: ['admin'] } },
      { id: 'locked-h2', hosts: [LOCKED_HOST], path: '/h/**', methods: ['GET', 'POST'], upstream: 'h2', auth: 'required', scopes: { allOf: ['admin'] } },
      { id: 'locked-ws', hosts: [LOCKED_HOST], path: '/w/**', methods: ['GET'], upstream: 'ws', auth: 'required', scopes: { allOf: ['admin'] }, websocket: true },
    ],
    // The access log would hold every fuzzed request in this process's memory (the helper keeps stdout lines).
    logging: { level: 'info', events: 'stdout', access: join(dir, 'access.log') },
  })
  const path = join(dir, 'portcullis.json')
  writeFileSync(path, JSON.stringify(config))
  const gateway = await startGateway(path)
  const url = new URL((gateway.lines.find((l) => l.msg === 'listening')!.urls as string[])[1])
  return {
    gateway,
    url,
    tls,
    token: await ks.sign({ scope: 'read' }),
    violation: () => violations[0],
    summary: () => `upstreams got ${seen['the HTTP/1.1']} HTTP/1.1 requests, ${seen['the HTTP/2']} HTTP/2 requests and ${seen['the WebSocket']} WebSocket handshakes and requests`,
    async close() {
      http1.closeAllConnections()
      http1.close()
      http2.close()
      websocketHttp.closeAllConnections()
      websocketHttp.close()
      await ks.close()
    },
  }
}

/**
 * A raw connection to the fuzzed listener: TCP, or TLS offering one ALPN protocol. Errors are
 * expected (the gateway drops what it refuses) and ignored; what comes back is read and dropped.
 */
export async function connectTo(setup: FuzzSetup, alpn: 'h2' | 'http/1.1'): Promise<Duplex> {
  const port = Number(setup.url.port)
  const socket = setup.tls ? tlsConnect({ port, host: setup.url.hostname, ALPNProtocols: [alpn], rejectUnauthorized: false }) : netConnect(port, setup.url.hostname)
  socket.on('error', () => {})
  socket.resume()
  await once(socket, setup.tls ? 'secureConnect' : 'connect').catch(() => undefined)
  return socket
}

/**
 * Writes `parts` one after another, pausing up to `pauseMs` after some (the seed decides), then
 * ends the connection, leaves it at once, or lingers up to `lingerMs` before leaving it.
 */
export async function sendThenLeave(socket: Duplex, parts: readonly Buffer[], random: (n: number) => number, pauseMs: number, lingerMs: number): Promise<void> {
  for (const part of parts) {
    if (socket.destroyed || !socket.writable) break
    socket.write(part)
    if (random(2) === 0) await new Promise((r) => setTimeout(r, random(pauseMs)))
  }
  const ending = random(3)
  if (ending === 1) socket.end()
  if (ending > 0) await new Promise((r) => setTimeout(r, random(lingerMs)))
  socket.destroy()
}

async function listen(server: { listen: (port: number, host: string, cb: () => void) => unknown; address: () => unknown }): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
