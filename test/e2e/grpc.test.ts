import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { once } from 'node:events'
import { connect as connectHttp2 } from 'node:http2'
import { listenerFiles } from '../helpers/certs.js'
import { baseConfig, HTTP2_LISTENERS_ACKNOWLEDGED, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'

const AUD = 'catalog-api'

// A gRPC service defined without a .proto file: messages are JSON in the bytes gRPC frames, so the
// test needs no code generation. The framing, HTTP/2 and status trailers are grpc-js's own.
const json = {
  requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  requestDeserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
  responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  responseDeserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
}
const CATALOG = {
  getItem: { path: '/catalog.Catalog/GetItem', requestStream: false, responseStream: false, ...json },
  listItems: { path: '/catalog.Catalog/ListItems', requestStream: false, responseStream: true, ...json },
  addItems: { path: '/catalog.Catalog/AddItems', requestStream: true, responseStream: false, ...json },
  // The same client stream on a route without a longer deadline.
  importItems: { path: '/catalog.Catalog/ImportItems', requestStream: true, responseStream: false, ...json },
} satisfies grpc.ServiceDefinition

type Item = { id: string; name?: string }

/** A gRPC-Web (and gRPC) message frame: flag 0, a 4-byte length, the message. */
function webFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt32BE(payload.length, 1)
  return Buffer.concat([head, payload])
}

/** The frames of a gRPC-Web answer body (flag 0x80: the trailer frame). */
function webFrames(body: Buffer): Array<{ flag: number; payload: Buffer }> {
  const frames: Array<{ flag: number; payload: Buffer }> = []
  for (let i = 0; i < body.length; ) {
    const length = body.readUInt32BE(i + 1)
    frames.push({ flag: body[i], payload: body.subarray(i + 5, i + 5 + length) })
    i += 5 + length
  }
  return frames
}

// grpc.health.v1.Health, with the messages as raw protobuf bytes: HealthCheckRequest
// { string service = 1 } and HealthCheckResponse { ServingStatus status = 1 } (SERVING = 1).
const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b }
const HEALTH = {
  check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, ...raw },
} satisfies grpc.ServiceDefinition

interface CatalogClient extends grpc.Client {
  getItem(req: Item, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: Item) => void): grpc.ClientUnaryCall
  listItems(req: object, md: grpc.Metadata): grpc.ClientReadableStream<Item>
  addItems(md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { added: number }) => void): grpc.ClientWritableStream<Item>
  importItems(md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { added: number }) => void): grpc.ClientWritableStream<Item>
}

describe('gRPC through an HTTP/2 listener to an HTTP/2 (h2c) upstream, with @grpc/grpc-js on both ends', { timeout: 60_000 }, () => {
  let ks: KeyServer
  let server: grpc.Server
  let gw: StartedGateway
  let client: CatalogClient
  let token = ''
  const seen: Array<{ method: string; metadata: Record<string, unknown> }> = []
  /** What the service's health answers (1 SERVING, 2 NOT_SERVING), and the requests it got. */
  let serving = 1
  const healthRequests: Buffer[] = []

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    server = new grpc.Server()
    const record = (method: string, md: grpc.Metadata) => seen.push({ method, metadata: md.getMap() })
    server.addService(CATALOG, {
      getItem: (call: grpc.ServerUnaryCall<Item, Item>, cb: grpc.sendUnaryData<Item>) => {
        record('GetItem', call.metadata)
        if (call.request.id === 'missing') return cb({ code: grpc.status.NOT_FOUND, details: 'no such item: missing' })
        cb(null, { id: call.request.id, name: `item ${call.request.id}` })
      },
      listItems: (call: grpc.ServerWritableStream<{ failAfter?: number }, Item>) => {
        record('ListItems', call.metadata)
        const { failAfter } = call.request
        for (const id of ['a', 'b', 'c'].slice(0, failAfter)) call.write({ id })
        // An error after messages: its status can only come in the trailers.
        if (failAfter !== undefined) call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'page budget spent' })
        else call.end()
      },
      addItems: (call: grpc.ServerReadableStream<Item, { added: number }>, cb: grpc.sendUnaryData<{ added: number }>) => {
        record('AddItems', call.metadata)
        let added = 0
        call.on('data', () => added++)
        call.on('end', () => cb(null, { added }))
      },
      importItems: (call: grpc.ServerReadableStream<Item, { added: number }>, cb: grpc.sendUnaryData<{ added: number }>) => {
        record('ImportItems', call.metadata)
        call.on('data', () => {})
        call.on('end', () => cb(null, { added: 0 }))
        call.on('error', () => {})
      },
    })
    server.addService(HEALTH, {
      check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        healthRequests.push(call.request)
        cb(null, Buffer.from([0x08, serving]))
      },
    })
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
    const { dir, server: pems } = await listenerFiles('portcullis-grpc-')
    const config = baseConfig({
      listeners: [
        // Plain, for the readiness check only.
        { host: '127.0.0.1', port: 0 },
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', http2: true } },
        // HTTP/2 without TLS, as a TLS-terminating proxy in front would forward gRPC.
        { host: '127.0.0.1', port: 0, h2c: true },
      ],
      security: HTTP2_LISTENERS_ACKNOWLEDGED,
      issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
      upstreams: [
        {
          id: 'catalog',
          url: `http://127.0.0.1:${port}`,
          http2: true,
          healthCheck: { grpcService: 'catalog.Catalog', intervalMs: 100, timeoutMs: 1000, unhealthyAfter: 2, healthyAfter: 2 },
        },
      ],
      routes: [
        // Also for browsers, in gRPC-Web.
        {
          id: 'catalog-read',
          path: '/catalog.Catalog/:method',
          methods: ['POST'],
          upstream: 'catalog',
          auth: 'required',
          scopes: { allOf: ['catalog:read'] },
          grpcWeb: true,
          cors: { allowOrigins: ['https://shop.example'], allowHeaders: ['authorization', 'content-type', 'x-grpc-web', 'x-user-agent'], exposeHeaders: ['grpc-status', 'grpc-message'] },
        },
        // A client stream may take longer than server.requestTimeoutMs here.
        { id: 'catalog-add', path: '/catalog.Catalog/AddItems', methods: ['POST'], upstream: 'catalog', auth: 'required', scopes: { allOf: ['catalog:read'] }, http2RequestTimeoutMs: 20000 },
        // A method the service does not have, limited to one call a minute per subject.
        { id: 'catalog-expensive', path: '/catalog.Catalog/Expensive', methods: ['POST'], upstream: 'catalog', auth: 'required', limits: ['one-a-minute'] },
      ],
      server: { headersTimeoutMs: 1000, requestTimeoutMs: 1500 },
      limits: { bruteForce: { enabled: false }, policies: [{ id: 'one-a-minute', key: ['subject'], rate: { limit: 1, periodSec: 60 } }] },
    })
    const path = join(dir, 'portcullis.json')
    writeFileSync(path, JSON.stringify(config))
    gw = await startGateway(path)
    const url = new URL((gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[1])
    const Client = grpc.makeGenericClientConstructor(CATALOG, 'Catalog')
    client = new Client(`127.0.0.1:${url.port}`, grpc.credentials.createSsl(Buffer.from(pems.cert))) as unknown as CatalogClient
    token = await ks.sign({ scope: 'catalog:read', sub: 'alice', client_id: 'shop' })
  })

  after(async () => {
    client?.close()
    await gw?.stop()
    await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()))
    await ks?.close()
  })

  test('an h2c listener serves gRPC by prior knowledge, and HTTP/1.1 on the same port through the same checks', async () => {
    const h2cUrl = new URL((gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[2])
    const Client = grpc.makeGenericClientConstructor(CATALOG, 'Catalog')
    const plain = new Client(`127.0.0.1:${h2cUrl.port}`, grpc.credentials.createInsecure()) as unknown as CatalogClient
    const md = bearer(token, { 'x-request-id': 'grpc-test-request-h2c1' })
    const res = await new Promise<Item | undefined>((resolve, reject) => plain.getItem({ id: '7' }, md, (err, r) => (err ? reject(err) : resolve(r))))
    plain.close()
    assert.deepEqual(res, { id: '7', name: 'item 7' })
    assert.equal(seen.at(-1)!.metadata['x-auth-subject'], 'alice')
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === 'grpc-test-request-h2c1')
    assert.equal(access.httpVersion, '2.0')
    const h1 = await fetch(`http://127.0.0.1:${h2cUrl.port}/catalog.Catalog/GetItem`, { method: 'POST' })
    assert.equal(h1.status, 401, 'no token, no call')
    assert.equal((await h1.json()).code, 'ERR_AUTHN_MISSING')
  })

  const bearer = (t: string, more: Record<string, string> = {}) => {
    const md = new grpc.Metadata()
    md.set('authorization', `Bearer ${t}`)
    for (const [k, v] of Object.entries(more)) md.set(k, v)
    return md
  }
  const getItem = (id: string, md: grpc.Metadata) =>
    new Promise<{ err: grpc.ServiceError | null; res?: Item }>((resolve) => client.getItem({ id }, md, (err, res) => resolve({ err, res })))

  test('a unary call: verified, forwarded with the verified identity, answered', async () => {
    const { err, res } = await getItem('42', bearer(token, { 'x-auth-subject': 'mallory', 'x-request-id': 'grpc-test-request-0001' }))
    assert.equal(err, null)
    assert.deepEqual(res, { id: '42', name: 'item 42' })
    const call = seen.at(-1)!
    assert.equal(call.method, 'GetItem')
    assert.equal(call.metadata['x-auth-subject'], 'alice', 'the verified subject, not the spoofed one')
    assert.equal(call.metadata['x-auth-client-id'], 'shop')
    assert.equal(call.metadata['x-request-id'], 'grpc-test-request-0001')
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === 'grpc-test-request-0001')
    assert.equal(access.route, 'catalog-read')
    assert.equal(access.httpVersion, '2.0')
  })

  test("the upstream's error status and message reach the client: alone in the head (Trailers-Only), or in trailers after messages", async () => {
    const { err } = await getItem('missing', bearer(token))
    assert.equal(err?.code, grpc.status.NOT_FOUND)
    assert.equal(err?.details, 'no such item: missing')
    const ids: string[] = []
    const stream = client.listItems({ failAfter: 2 }, bearer(token))
    const failed = await new Promise<grpc.ServiceError>((resolve) => {
      stream.on('data', (item: Item) => ids.push(item.id))
      stream.on('error', resolve)
    })
    assert.deepEqual(ids, ['a', 'b'])
    assert.equal(failed.code, grpc.status.RESOURCE_EXHAUSTED)
    assert.equal(failed.details, 'page budget spent')
  })

  test('a server stream and a client stream flow through, message by message', async () => {
    const ids: string[] = []
    const stream = client.listItems({}, bearer(token))
    for await (const item of stream) ids.push((item as Item).id)
    assert.deepEqual(ids, ['a', 'b', 'c'])
    const added = await new Promise<{ err: grpc.ServiceError | null; res?: { added: number } }>((resolve) => {
      const up = client.addItems(bearer(token), (err, res) => resolve({ err, res }))
      for (let i = 0; i < 5; i++) up.write({ id: `n${i}` })
      up.end()
    })
    assert.equal(added.err, null)
    assert.deepEqual(added.res, { added: 5 })
  })

  test('a client stream must be sent within server.requestTimeoutMs (DEADLINE_EXCEEDED past it), or its route\'s http2RequestTimeoutMs', async () => {
    // No end: the stream stays open until the gateway cuts it.
    const cut = await new Promise<grpc.ServiceError | null>((resolve) => {
      const up = client.importItems(bearer(token), (err) => resolve(err))
      up.write({ id: 'first' })
    })
    assert.equal(cut?.code, grpc.status.DEADLINE_EXCEEDED)
    assert.match(String(cut?.details), /^ERR_HTTP_REQUEST_TIMEOUT: /)
    // Longer than server.requestTimeoutMs (1.5 s), well within the route's 20 s.
    const long = await new Promise<{ err: grpc.ServiceError | null; res?: { added: number } }>((resolve) => {
      const up = client.addItems(bearer(token), (err, res) => resolve({ err, res }))
      let sent = 0
      const timer = setInterval(() => {
        up.write({ id: `slow-${sent}` })
        if (++sent === 6) {
          clearInterval(timer)
          up.end()
        }
      }, 500)
    })
    assert.equal(long.err, null)
    assert.deepEqual(long.res, { added: 6 })
  })

  test('the upstream is health-checked in the gRPC health protocol: NOT_SERVING takes it out, SERVING brings it back', async () => {
    while (healthRequests.length < 2) await new Promise((r) => setTimeout(r, 50))
    // HealthCheckRequest { service: "catalog.Catalog" }
    assert.deepEqual(healthRequests[0], Buffer.concat([Buffer.from([0x0a, 15]), Buffer.from('catalog.Catalog')]))
    assert.ok(!gw.lines.some((l) => l.event === 'upstream.unhealthy'), JSON.stringify(gw.lines.filter((l) => l.event === 'upstream.unhealthy')))
    serving = 2
    const down = await gw.waitFor((l) => l.event === 'upstream.unhealthy')
    assert.equal(down.reason, 'not_serving')
    serving = 1
    await gw.waitFor((l) => l.event === 'upstream.healthy')
  })

  const call = (path: string, md: grpc.Metadata) =>
    new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest(path, json.requestSerialize, json.responseDeserialize, {}, md, (err) => resolve(err)))

  test('refusals come as gRPC status with the stable code in the message: no token UNAUTHENTICATED, a token without the scope PERMISSION_DENIED, a method no route names UNIMPLEMENTED; none reaches the service', async () => {
    const before = seen.length
    const none = await getItem('1', new grpc.Metadata())
    assert.equal(none.err?.code, grpc.status.UNAUTHENTICATED)
    assert.equal(none.err?.details, 'ERR_AUTHN_MISSING: Authentication required')
    assert.match(String(none.err?.metadata.get('www-authenticate')[0]), /^Bearer realm=/)
    assert.match(String(none.err?.metadata.get('x-request-id')[0]), /^[0-9a-f-]{36}$/)
    const other = await ks.sign({ scope: 'orders:read', sub: 'bob' })
    const scoped = await getItem('1', bearer(other))
    assert.equal(scoped.err?.code, grpc.status.PERMISSION_DENIED)
    assert.match(String(scoped.err?.details), /^ERR_AUTHZ_INSUFFICIENT_SCOPE: /)
    const unknown = await call('/admin.Admin/Drop', bearer(token))
    assert.equal(unknown?.code, grpc.status.UNIMPLEMENTED)
    assert.match(String(unknown?.details), /^ERR_ROUTE_NOT_FOUND: /)
    assert.equal(seen.length, before)
    const event = await gw.waitFor((l) => l.event === 'authn.missing')
    assert.equal(event.path, '/catalog.Catalog/GetItem')
  })

  /** A gRPC-Web call over HTTP/1.1 (fetch), as a browser's grpc-web client makes it; the answer's frames decoded. */
  async function webCall(path: string, message: unknown, o: { text?: boolean; token?: string; body?: string } = {}) {
    const frame = webFrame(Buffer.from(JSON.stringify(message)))
    const r = await fetch(`${gw.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': o.text ? 'application/grpc-web-text+proto' : 'application/grpc-web+proto',
        'x-grpc-web': '1',
        origin: 'https://shop.example',
        ...(o.token === undefined ? {} : { authorization: `Bearer ${o.token}` }),
      },
      body: o.body ?? (o.text ? frame.toString('base64') : new Uint8Array(frame)),
    })
    const raw = Buffer.from(await r.arrayBuffer())
    return { status: r.status, headers: r.headers, frames: webFrames(o.text ? Buffer.from(raw.toString('latin1'), 'base64') : raw) }
  }

  test('gRPC-Web over HTTP/1.1: a unary call reaches the service as gRPC with the verified identity; its answer and status come back in frames a browser reads', async () => {
    const before = seen.length
    const r = await webCall('/catalog.Catalog/GetItem', { id: '7' }, { token })
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('content-type'), 'application/grpc-web+proto')
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://shop.example')
    assert.equal(r.frames.length, 2)
    assert.deepEqual([r.frames[0].flag, JSON.parse(r.frames[0].payload.toString())], [0, { id: '7', name: 'item 7' }])
    assert.equal(r.frames[1].flag, 0x80, 'the status in a trailer frame')
    assert.match(r.frames[1].payload.toString('latin1'), /^grpc-status:0\r\n/m)
    assert.equal(seen.length, before + 1)
    assert.equal(seen.at(-1)!.method, 'GetItem')
    assert.equal(seen.at(-1)!.metadata['x-auth-subject'], 'alice')
  })

  test('gRPC-Web text (base64): a server stream that fails after two messages ends with its status frame; an error with no message comes in the head', async () => {
    const r = await webCall('/catalog.Catalog/ListItems', { failAfter: 2 }, { token, text: true })
    assert.equal(r.headers.get('content-type'), 'application/grpc-web-text+proto')
    assert.deepEqual(
      r.frames.map((f) => f.flag),
      [0, 0, 0x80],
    )
    assert.deepEqual(
      r.frames.slice(0, 2).map((f) => JSON.parse(f.payload.toString()).id),
      ['a', 'b'],
    )
    const trailer = r.frames[2].payload.toString('latin1')
    assert.match(trailer, /^grpc-status:8\r\n/m)
    assert.match(trailer, /^grpc-message:page%20budget%20spent\r\n/m, 'percent-encoded, as gRPC sends it')
    const missing = await webCall('/catalog.Catalog/GetItem', { id: 'missing' }, { token })
    assert.equal(missing.headers.get('grpc-status'), '5')
    assert.equal(missing.frames.length, 0)
  })

  test('gRPC-Web over HTTP/2 (an h2c stream): the same frames, and an error in the head ends the stream', async () => {
    const h2cUrl = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[2]
    const session = connectHttp2(h2cUrl)
    session.on('error', () => {})
    const callOn = async (id: string) => {
      const stream = session.request({ ':method': 'POST', ':path': '/catalog.Catalog/GetItem', 'content-type': 'application/grpc-web+proto', authorization: `Bearer ${token}` })
      stream.end(webFrame(Buffer.from(JSON.stringify({ id }))))
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      const [head] = (await once(stream, 'response')) as [Record<string, unknown>]
      await once(stream, 'end')
      return { head, frames: webFrames(Buffer.concat(chunks)) }
    }
    const ok = await callOn('9')
    assert.equal(ok.head['content-type'], 'application/grpc-web+proto')
    assert.deepEqual(
      ok.frames.map((f) => f.flag),
      [0, 0x80],
    )
    assert.deepEqual(JSON.parse(ok.frames[0].payload.toString()), { id: '9', name: 'item 9' })
    const missing = await callOn('missing')
    assert.equal(missing.head['grpc-status'], '5')
    assert.equal(missing.frames.length, 0)
    session.close()
  })

  test('gRPC-Web refusals are gRPC status a browser may read (CORS): no token UNAUTHENTICATED, a text body that is no base64 INVALID_ARGUMENT; neither reaches the service', async () => {
    const before = seen.length
    const none = await webCall('/catalog.Catalog/GetItem', { id: '1' })
    assert.equal(none.status, 200)
    assert.equal(none.headers.get('content-type'), 'application/grpc-web+proto')
    assert.equal(none.headers.get('grpc-status'), '16')
    assert.match(String(none.headers.get('grpc-message')), /^ERR_AUTHN_MISSING: /)
    assert.equal(none.headers.get('access-control-allow-origin'), 'https://shop.example')
    const bad = await webCall('/catalog.Catalog/GetItem', { id: '1' }, { token, text: true, body: 'AAAA*not base64*' })
    assert.equal(bad.headers.get('grpc-status'), '3')
    assert.match(String(bad.headers.get('grpc-message')), /^ERR_SANITIZE_REJECTED: /)
    await gw.waitFor((l) => l.event === 'sanitize.rejected' && l.reason === 'grpc_web_text')
    assert.equal(seen.length, before)
  })

  test('a rate limit refuses with RESOURCE_EXHAUSTED, not UNAVAILABLE (which clients retry at once)', async () => {
    const first = await call('/catalog.Catalog/Expensive', bearer(token))
    // Through the gateway: the service itself has no such method.
    assert.equal(first?.code, grpc.status.UNIMPLEMENTED)
    assert.doesNotMatch(String(first?.details), /^ERR_/)
    const second = await call('/catalog.Catalog/Expensive', bearer(token))
    assert.equal(second?.code, grpc.status.RESOURCE_EXHAUSTED)
    assert.match(String(second?.details), /^ERR_LIMITS_EXCEEDED: /)
    assert.ok(second?.metadata.get('retry-after').length === 1, 'Retry-After comes along')
  })
})
