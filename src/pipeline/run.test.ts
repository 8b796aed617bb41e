import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../errors/gateway-error.js'
import type { SecurityEvent } from '../events/event.js'
import { createPipeline } from './run.js'
import type { Deps, RequestContext, Stage } from './stage.js'

function fakeRes() {
  const res = {
    headersSent: false,
    writableEnded: false,
    destroyed: false,
    status: 0,
    headers: {} as Record<string, string>,
    body: '',
    writeHead(status: number, headers: Record<string, string>) {
      res.status = status
      res.headers = headers
      res.headersSent = true
      return res
    },
    end(body?: string) {
      res.body = body ?? ''
      res.writableEnded = true
    },
    destroy() {
      res.destroyed = true
    },
  }
  return res
}

function fakeCtx(method = 'GET') {
  const res = fakeRes()
  const ctx = {
    id: 'req-1',
    traceparent: '00-' + 'a'.repeat(32) + '-' + 'b'.repeat(16) + '-01',
    traceId: 'a'.repeat(32),
    req: { url: "/raw?access_token=secret" },
    res,
    method,
    clientIp: '127.0.0.1',
    peerIp: '127.0.0.1',
    startedAt: 0,
    path: '/x',
    query: '',
    route: undefined,
    identity: undefined,
    tokenDigest: 'digest',
    upstreamHeaders: {},
    status: 0,
    upstreamMs: undefined,
    over: false,
  } as unknown as RequestContext
  return { ctx, res }
}

function fakeDeps() {
  const events: SecurityEvent[] = []
  const errors: unknown[] = []
  const deps = {
    now: () => 0,
    events: { emit: (e: SecurityEvent) => events.push(e), flush: async () => {} },
    logger: { error: (o: unknown) => errors.push(o) },
  } as unknown as Deps
  return { deps, events, errors }
}

const answer: Stage = {
  name: 'forward',
  onRequest(ctx) {
    ctx.res.writeHead(200, {})
    ctx.res.end('ok')
  },
}

test('runs synchronous stages in order without awaiting and calls onDone once', () => {
  const order: string[] = []
  const { deps } = fakeDeps()
  let done = 0
  const p = createPipeline(
    [
      { name: 'normalize', onRequest: () => void order.push('normalize') },
      { name: 'route', onRequest: () => void order.push('route') },
      answer,
    ],
    deps,
    { realm: 'r', onDone: () => done++ },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  // Synchronous: everything happened before handle() returned.
  assert.deepEqual(order, ['normalize', 'route'])
  assert.equal(res.status, 200)
  assert.equal(done, 1)
})

test('awaits a stage that returns a promise, then continues with the next', async () => {
  const { deps } = fakeDeps()
  let doneResolve!: () => void
  const finished = new Promise<void>((r) => (doneResolve = r))
  const p = createPipeline(
    [{ name: 'authn', onRequest: async (ctx) => void (ctx.status = 7) }, answer],
    deps,
    { realm: 'r', onDone: () => doneResolve() },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  await finished
  assert.equal(res.status, 200)
})

test('a GatewayError becomes one problem response and one event carrying the token digest, and later stages do not run', async () => {
  const { deps, events } = fakeDeps()
  let reached = false
  const p = createPipeline(
    [
      { name: 'authn', onRequest: () => { throw new GatewayError('ERR_AUTHN_EXPIRED', { reason: 'expired' }) } },
      { name: 'forward', onRequest: () => void (reached = true) },
    ],
    deps,
    { realm: 'api' },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  assert.equal(reached, false)
  assert.equal(res.status, 401)
  assert.equal(res.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  assert.equal(JSON.parse(res.body).code, 'ERR_AUTHN_EXPIRED')
  assert.equal(events.length, 1)
  const e = events[0] as unknown as Record<string, unknown>
  assert.equal(e.type, 'authn.expired')
  assert.equal(e.reason, 'expired')
  assert.equal(e.tokenDigest, 'digest')
  assert.equal(e.requestId, 'req-1')
})

test('a rejected promise is handled like a thrown error', async () => {
  const { deps, events } = fakeDeps()
  let doneResolve!: () => void
  const finished = new Promise<void>((r) => (doneResolve = r))
  const p = createPipeline(
    [{ name: 'forward', onRequest: async () => { throw new GatewayError('ERR_FORWARD_UNAVAILABLE') } }],
    deps,
    { realm: 'r', onDone: () => doneResolve() },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  await finished
  assert.equal(res.status, 502)
  assert.equal(events[0].type, 'forward.unavailable')
})

test('an unexpected exception becomes ERR_INTERNAL with no internal detail, and is logged', () => {
  const { deps, errors } = fakeDeps()
  const p = createPipeline(
    [{ name: 'route', onRequest: () => { throw new TypeError('db password is hunter2') } }],
    deps,
    { realm: 'r' },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  assert.equal(res.status, 500)
  assert.equal(JSON.parse(res.body).code, 'ERR_INTERNAL')
  assert.ok(!res.body.includes('hunter2'))
  assert.equal(errors.length, 1)
})

test('a pipeline that ends without answering is an internal error, not an empty 200', () => {
  const { deps } = fakeDeps()
  const p = createPipeline([{ name: 'route', onRequest: () => {} }], deps, { realm: 'r' })
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  assert.equal(res.status, 500)
})

test('an error after the response started cuts the connection instead of writing a second response', async () => {
  const { deps } = fakeDeps()
  const p = createPipeline(
    [
      {
        name: 'forward',
        onRequest(ctx) {
          ctx.res.writeHead(200, {})
          throw new GatewayError('ERR_FORWARD_UNAVAILABLE')
        },
      },
    ],
    deps,
    { realm: 'r' },
  )
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  assert.equal(res.status, 200)
  assert.equal(res.destroyed, true)
})

test('HEAD error responses carry headers but no body', () => {
  const { deps } = fakeDeps()
  const p = createPipeline([{ name: 'route', onRequest: () => { throw new GatewayError('ERR_ROUTE_NOT_FOUND') } }], deps, { realm: 'r' })
  const { ctx, res } = fakeCtx('HEAD')
  p.handle(ctx)
  assert.equal(res.status, 404)
  assert.equal(res.body, '')
})

test('an event for a request refused before normalization carries the raw path but never its query', () => {
  const { deps, events } = fakeDeps()
  const p = createPipeline([{ name: 'normalize', onRequest: () => { throw new GatewayError('ERR_NORMALIZE_REJECTED') } }], deps, { realm: 'r' })
  const { ctx } = fakeCtx()
  ctx.path = ''
  p.handle(ctx)
  const e = events[0] as unknown as Record<string, unknown>
  assert.equal(e.path, '/raw')
  assert.ok(!JSON.stringify(e).includes('secret'))
})

test('an event for an absolute-form request-target never carries the user info (a credential) it holds', () => {
  const { deps, events } = fakeDeps()
  const p = createPipeline([{ name: 'normalize', onRequest: () => { throw new GatewayError('ERR_NORMALIZE_REJECTED') } }], deps, { realm: 'r' })
  for (const url of ['http://alice:s3cret@example.com/x?q=1', 'https://alice:s3cret@example.com', 'HTTP://:s3cret@[::1]:8080/a@b']) {
    const { ctx } = fakeCtx()
    ;(ctx.req as { url: string }).url = url
    ctx.path = ''
    p.handle(ctx)
    const e = events.at(-1) as unknown as Record<string, unknown>
    assert.ok(!JSON.stringify(e).includes('s3cret'), JSON.stringify(e))
    assert.ok(!JSON.stringify(e).includes('alice'), JSON.stringify(e))
  }
  assert.equal((events[0] as unknown as Record<string, unknown>).path, 'http://example.com/x')
  assert.equal((events[1] as unknown as Record<string, unknown>).path, 'https://example.com')
  assert.equal((events[2] as unknown as Record<string, unknown>).path, 'HTTP://[::1]:8080/a@b')
})

test('a client that hung up before any response is not reported as an internal error', () => {
  const { deps, events, errors } = fakeDeps()
  let done = 0
  const p = createPipeline([{ name: 'forward', onRequest: (ctx) => void ((ctx.res as unknown as { destroyed: boolean }).destroyed = true) }], deps, { realm: 'r', onDone: () => done++ })
  const { ctx, res } = fakeCtx()
  p.handle(ctx)
  assert.equal(res.status, 0)
  assert.equal(events.length, 0)
  assert.equal(errors.length, 0)
  assert.equal(done, 1)
})

test('sampled events: a negative sample drops the event, a positive one is recorded as suppressed; onDenied sees every refusal', () => {
  const { deps, events } = fakeDeps()
  const denied: string[] = []
  let sample = -1
  const p = createPipeline([{ name: 'limits', onRequest: () => { throw new GatewayError('ERR_LIMITS_EXCEEDED') } }], deps, {
    realm: 'r',
    onDenied: (_ctx, code) => void denied.push(code),
    sampleEvent: () => sample,
  })
  p.handle(fakeCtx().ctx)
  assert.equal(events.length, 0)
  sample = 7
  p.handle(fakeCtx().ctx)
  assert.equal(events.length, 1)
  assert.equal((events[0] as unknown as { suppressed: number }).suppressed, 7)
  assert.deepEqual(denied, ['ERR_LIMITS_EXCEEDED', 'ERR_LIMITS_EXCEEDED'])
})

test('interrupt answers and records a request once; the stage still pending then changes nothing, resolved or rejected', async () => {
  for (const outcome of ['resolves', 'rejects'] as const) {
    const { deps, events } = fakeDeps()
    let settle!: () => void
    const pending = new Promise<void>((resolve, reject) => (settle = outcome === 'resolves' ? resolve : () => reject(new GatewayError('ERR_FORWARD_UNAVAILABLE'))))
    let reached = false
    const done: number[] = []
    const p = createPipeline(
      [{ name: 'limits', onRequest: () => pending }, { name: 'forward', onRequest: () => void (reached = true) }],
      deps,
      { realm: 'r', onDone: (c) => done.push(c.status) },
    )
    const { ctx, res } = fakeCtx('POST')
    p.handle(ctx)
    p.interrupt(ctx, new GatewayError('ERR_HTTP_REQUEST_TIMEOUT', { reason: 'request_timeout' }))
    assert.equal(res.status, 408)
    assert.deepEqual(done, [408])
    assert.deepEqual(events.map((e) => [e.type, (e as { requestId?: string }).requestId, (e as { method?: string }).method]), [['http.request_timeout', 'req-1', 'POST']])
    // A second interruption of the same request is ignored too.
    p.interrupt(ctx, new GatewayError('ERR_HTTP_BAD_REQUEST', { reason: 'invalid_eof_state' }))
    settle()
    await new Promise((r) => setImmediate(r))
    assert.equal(reached, false, outcome)
    assert.deepEqual(done, [408], outcome)
    assert.equal(events.length, 1, outcome)
    assert.equal(res.status, 408)
  }
})
