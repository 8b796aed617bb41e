import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, createSecureServer, type Http2Server, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { AddressInfo, Server } from 'node:net'
import { rawExchange } from '../helpers/net.js'
import { DATA, END_HEADERS, END_STREAM, frame, headerBlock, HEADERS } from '../helpers/h2-frames.js'
import { startRawHttp2Upstream } from '../helpers/raw-h2-upstream.js'
import { certificate, listenerFiles } from '../helpers/certs.js'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'

/** An upstream that speaks HTTP/2 only (no HTTP/1.1 fallback), recording what reached it and how. */
interface H2Upstream {
  readonly url: string
  readonly seen: Array<{ path: string; httpVersion: string; headers: Record<string, unknown> }>
  /** How each request's body ended, by path: complete ('end', END_STREAM seen) or reset without it. */
  readonly outcomes: Map<string, 'end' | 'reset'>
  probes: number
  /** What its /healthz answers. */
  health: number
  close(): Promise<void>
}

async function startH2Upstream(name: string, tls?: { cert: string; key: string }): Promise<H2Upstream> {
  const upstream = { seen: [], outcomes: new Map(), probes: 0, health: 200 } as unknown as H2Upstream
  const handler = (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (req.url === '/healthz') {
      upstream.probes++
      res.writeHead(upstream.health).end()
      return
    }
    upstream.seen.push({ path: req.url, httpVersion: req.httpVersion, headers: { ...req.headers } })
    req.resume()
    // Whichever comes first: the body's end, or the stream's reset. (node emits 'end' on a stream
    // reset with an error code too, after 'aborted'; one reset with NO_ERROR ends it first.)
    let outcome: 'end' | 'reset' | undefined
    req.once('aborted', () => (outcome ??= 'reset'))
    req.on('end', () => {
      outcome ??= 'end'
      if (!res.closed) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ upstream: name }))
    })
    req.stream.once('close', () => upstream.outcomes.set(req.url, outcome ?? 'reset'))
  }
  const server: Http2Server | Http2SecureServer = tls === undefined ? createServer(handler) : createSecureServer({ ...tls, allowHTTP1: false }, handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return Object.assign(upstream, {
    url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  })
}

describe('upstreams reached over HTTP/2 (upstreams[].http2)', { timeout: 60_000 }, () => {
  let a: H2Upstream
  let b: H2Upstream
  let secure: H2Upstream
  let single: H2Upstream
  let gw: StartedGateway

  before(async () => {
    a = await startH2Upstream('a')
    b = await startH2Upstream('b')
    const upstreamPems = await certificate('localhost')
    secure = await startH2Upstream('secure', upstreamPems)
    single = await startH2Upstream('single')
    const { dir } = await listenerFiles('portcullis-up-h2-')
    writeFileSync(join(dir, 'upstream-ca.pem'), upstreamPems.cert)
    const config = baseConfig({
      upstreams: [
        {
          id: 'h2c',
          url: a.url,
          replicas: [b.url],
          http2: true,
          healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 1000, unhealthyAfter: 2, healthyAfter: 2 },
        },
        { id: 'h2', url: secure.url, http2: true, tls: { ca: '${file:upstream-ca.pem}', serverName: 'localhost' } },
        { id: 'single', url: single.url, http2: true },
      ],
      server: { maxBodyBytes: 4096 },
      routes: [
        { id: 'cleartext', path: '/c/**', methods: ['GET', 'POST'], upstream: 'h2c', auth: 'public' },
        { id: 'tls', path: '/t/**', methods: ['GET'], upstream: 'h2', auth: 'public' },
        { id: 'single', path: '/s/**', methods: ['GET', 'POST'], upstream: 'single', auth: 'public' },
      ],
    })
    const path = join(dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    gw = await startGateway(path)
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([a?.close(), b?.close(), secure?.close(), single?.close()])
  })

  test('an HTTP/1.1 client is served by h2c replicas (prior knowledge), spread over both, with the headers the gateway sets', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${gw.url}/c/item-${i}`, { headers: { 'x-request-id': `up-h2-request-000${i}` } })
      assert.equal(r.status, 200)
      await r.text()
    }
    const posted = await fetch(`${gw.url}/c/upload`, { method: 'POST', body: 'hello' })
    assert.equal(posted.status, 200)
    await posted.text()
    const all = [...a.seen, ...b.seen]
    assert.equal(all.length, 7)
    assert.ok(a.seen.length > 0 && b.seen.length > 0, `spread: ${a.seen.length} / ${b.seen.length}`)
    assert.ok(all.every((s) => s.httpVersion === '2.0'))
    const first = all.find((s) => s.path === '/c/item-0')!
    assert.equal(first.headers['x-request-id'], 'up-h2-request-0000')
    assert.equal(first.headers.via, '1.1 portcullis')
  })

  test('a body cut off on its way to an HTTP/2 upstream (past maxBodyBytes, or its client gone) fails that request alone, and the gateway serves on', async () => {
    // A chunked body larger than the limit: 413. (Such a failure once left the gateway's event
    // loop held for good by the HTTP/2 session to the upstream: the requests below would hang.)
    const head = 'POST /s/upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n'
    const over = (await rawExchange(gw.url, [`${head}2000\r\n${'a'.repeat(8192)}\r\n`, '0\r\n\r\n'], { waitMs: 2000 })).toString('latin1')
    assert.match(over, /^HTTP\/1\.1 413 /)
    assert.equal((await fetch(`${gw.url}/s/after-413`)).status, 200)
    // A chunked upload whose client leaves half-way.
    await rawExchange(gw.url, [head, `10\r\n${'b'.repeat(16)}\r\n`], { then: 'leave', waitMs: 200 })
    assert.equal((await fetch(`${gw.url}/s/after-leaving`)).status, 200)
  })

  test('uploads whose clients leave half-way end at the HTTP/2 upstream as reset, never as complete, and the gateway serves on', async () => {
    // Twenty chunked uploads at once on the pooled HTTP/2 connection; every other client leaves
    // after its first chunk. undici aborted such a request by closing its stream, which sent
    // END_STREAM first: a node upstream saw the cut body end as if complete. With the body still
    // piped in, that close could also leave the gateway's HTTP/2 session busy in a loop, its
    // memory growing until the process died.
    const head = (i: number) => `POST /s/cut-${i} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0
          ? rawExchange(gw.url, [`${head(i)}10\r\n${'c'.repeat(16)}\r\n`], { then: 'leave' })
          : rawExchange(gw.url, [`${head(i)}10\r\n${'c'.repeat(16)}\r\n`, '0\r\n\r\n'], { waitMs: 5000 }),
      ),
    )
    // Every completed upload reaches the upstream whole. An upload whose client left may have been
    // dropped before it was sent (nothing reached the upstream); one that was sent is reset there.
    const reached = (i: number) => single.seen.some((s) => s.path === `/s/cut-${i}`)
    const pending = (i: number) => (i % 2 === 1 || reached(i)) && !single.outcomes.has(`/s/cut-${i}`)
    while ([...Array(20).keys()].some(pending)) await new Promise((r) => setTimeout(r, 20))
    for (let i = 0; i < 20; i++) {
      if (i % 2 === 1) assert.equal(single.outcomes.get(`/s/cut-${i}`), 'end', `/s/cut-${i}`)
      else if (reached(i)) assert.equal(single.outcomes.get(`/s/cut-${i}`), 'reset', `/s/cut-${i}`)
    }
    assert.ok([...Array(10).keys()].some((k) => reached(2 * k)), 'some uploads cut half-way had reached the upstream')
    assert.equal((await fetch(`${gw.url}/s/after-cuts`)).status, 200)
  })

  test('health probes speak HTTP/2 too: they reach an h2c-only target, and a failing one is taken out', async () => {
    while (a.probes < 3 || b.probes < 3) await new Promise((r) => setTimeout(r, 50))
    assert.ok(!gw.lines.some((l) => l.event === 'upstream.unhealthy'), 'no target was ever unhealthy')
    b.health = 503
    const event = await gw.waitFor((l) => l.event === 'upstream.unhealthy')
    assert.equal(event.target, b.url)
    b.health = 200
    await gw.waitFor((l) => l.event === 'upstream.healthy')
  })

  test('an https upstream that speaks HTTP/2 only is reached by ALPN', async () => {
    const r = await fetch(`${gw.url}/t/secure`)
    assert.equal(r.status, 200)
    assert.deepEqual(await r.json(), { upstream: 'secure' })
    assert.equal(secure.seen.at(-1)?.httpVersion, '2.0')
  })
})

describe('an HTTP/2 upstream that breaks the protocol', { timeout: 60_000 }, () => {
  let upstream: Server
  let gw: StartedGateway

  before(async () => {
    // A raw upstream: `wedge` gets DATA before its HEADERS (a protocol error node answers by
    // closing the connection on its own), anything else an honest answer naming its request.
    const started = await startRawHttp2Upstream((sid, name) => {
      const ok = [frame(HEADERS, END_HEADERS, sid, headerBlock([[':status', '200']])), frame(DATA, END_STREAM, sid, Buffer.from(`[${name}]`))]
      return { frames: name === 'wedge' ? [frame(DATA, 0, sid, Buffer.from('early')), ...ok] : ok }
    })
    upstream = started.server
    gw = await startGateway(
      baseConfig({
        upstreams: [{ id: 'raw', url: started.url, http2: true, connections: 1, headersTimeoutMs: 500 }],
        routes: [{ id: 'raw', path: '/raw/**', methods: ['POST'], upstream: 'raw', auth: 'public' }],
      }),
    )
  })

  after(async () => {
    if (gw?.running()) await gw.stop()
    upstream?.close()
  })

  const post = (name: string) =>
    fetch(`${gw.url}/raw/x`, { method: 'POST', body: name, signal: AbortSignal.timeout(20_000) }).then(
      async (r) => ({ status: r.status, body: await r.text() }),
      () => ({ status: 0, body: '' }),
    )

  test('a connection node closes on its own after a protocol error is retired: requests on it get 502/504, the next ones a new connection, and the gateway lives', async () => {
    // Four requests on the one connection; the first breaks it. undici went on using the closed
    // session, and the next request it started there threw out of an event listener, ending the
    // gateway's process.
    const first = await Promise.all(['wedge', 'a', 'b', 'c'].map(post))
    for (const r of first) assert.ok([200, 502, 504].includes(r.status), `answered: ${JSON.stringify(first)}`)
    for (const r of first) if (r.status === 200) assert.match(r.body, /^\[[abc]\]$/)
    assert.ok(gw.running(), gw.stderr())
    // A new connection serves what comes next.
    const next = await post('d')
    assert.deepEqual(next, { status: 200, body: '[d]' })
    assert.ok(gw.running(), gw.stderr())
  })
})
