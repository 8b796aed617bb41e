import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import type { Config } from '../../config/schema.js'
import type { CompiledRoute } from '../route/router.js'
import type { Deps, Identity, RequestContext } from '../stage.js'
import { createForwardStage } from './index.js'

const deps: Deps = { now: () => 0, events: { emit() {}, flush: async () => {} }, logger: pino({ level: 'silent' }) }

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

function config(upstreamUrl: string, forwardAuthorization: boolean): Config {
  return {
    server: { maxBodyBytes: 0 },
    upstreams: [{ id: 'u', url: upstreamUrl, connectTimeoutMs: 2000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, connections: 4, keepAliveTimeoutMs: 1000 }],
    identity: {
      stripHeaders: [],
      headers: { subject: 'x-auth-subject', clientId: 'x-auth-client-id', scopes: 'x-auth-scopes', issuer: 'x-auth-issuer' },
      forwardAuthorization,
    },
    responses: { stripHeaders: ['server'] },
  } as unknown as Config
}

const route = { id: 'r', upstreamId: 'u', stripPrefix: undefined } as unknown as CompiledRoute

function context(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, identity?: Identity): RequestContext {
  return {
    id: 'req-0000001',
    req,
    res,
    method: req.method ?? 'GET',
    path: '/x',
    query: '',
    route,
    identity,
    upstreamHeaders: { ...headers },
    status: 0,
    upstreamMs: undefined,
    over: false,
  } as unknown as RequestContext
}

/** One request through a gateway-like server that runs only the forward stage. */
async function through(
  forwardAuthorization: boolean,
  headers: Record<string, string>,
  identity: Identity | undefined,
  before?: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): Promise<{ upstreamSaw: IncomingHttpHeaders[]; ctx: RequestContext }> {
  const upstreamSaw: IncomingHttpHeaders[] = []
  const upstream = await listen((req, res) => {
    upstreamSaw.push(req.headers)
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
  })
  const stage = createForwardStage(config(upstream.url, forwardAuthorization), deps)
  let ctx!: RequestContext
  let ran!: (p: Promise<void>) => void
  const settled = new Promise<Promise<void>>((r) => (ran = r))
  const front = await listen((req, res) => {
    void (before ? before(req, res) : Promise.resolve()).then(() => {
      ctx = context(req, res, headers, identity)
      ran(stage.onRequest(ctx) as Promise<void>)
    })
  })
  await new Promise<void>((resolve) => {
    const r = request(front.url + '/x', (res) => res.resume().on('end', resolve))
    r.on('error', () => resolve())
    r.end()
  })
  await (await settled)
  await stage.close()
  front.server.closeAllConnections()
  upstream.server.closeAllConnections()
  front.server.close()
  upstream.server.close()
  return { upstreamSaw, ctx }
}

const identity: Identity = {
  issuer: 'https://idp.example',
  issuerId: 'idp',
  subject: 'user-1',
  clientId: 'client-1',
  scopes: new Set(['b', 'a']),
  jti: undefined,
  tokenDigest: 'd',
  expiresAt: 0,
  claims: {},
}

test('forward writes the verified identity headers and keeps Authorization by default', async () => {
  const { upstreamSaw, ctx } = await through(true, { authorization: 'Bearer t' }, identity)
  assert.equal(upstreamSaw.length, 1)
  assert.equal(upstreamSaw[0]['x-auth-subject'], 'user-1')
  assert.equal(upstreamSaw[0]['x-auth-scopes'], 'a b')
  assert.equal(upstreamSaw[0].authorization, 'Bearer t')
  assert.equal(ctx.status, 200)
  assert.equal(typeof ctx.upstreamMs, 'number')
})

test('with forwardAuthorization false the token does not reach the upstream', async () => {
  const { upstreamSaw } = await through(false, { authorization: 'Bearer t', accept: '*/*' }, identity)
  assert.equal(upstreamSaw[0].authorization, undefined)
  assert.equal(upstreamSaw[0].accept, '*/*')
})

test('a client already gone when forward starts never gets its request sent upstream', { timeout: 20_000 }, async () => {
  // The client leaves while an earlier stage is still busy: its response is closed before forward runs.
  const gone = (_req: IncomingMessage, res: ServerResponse) =>
    new Promise<void>((resolve) => {
      res.once('close', () => resolve())
      res.socket?.destroy()
    })
  const { upstreamSaw, ctx } = await through(true, {}, undefined, gone)
  assert.equal(upstreamSaw.length, 0)
  assert.equal(ctx.status, 499)
})

test('close() ends a request stuck on an upstream that never answers once the grace period is over', { timeout: 120_000 }, async (t) => {
  // The upstream takes the request and never answers; its headers timeout (60 s) is far beyond the
  // close grace period (2 s). A pool left open past the grace period would leave the request
  // hanging until that timeout, which ends it as ERR_FORWARD_TIMEOUT instead.
  let arrived!: () => void
  const reached = new Promise<void>((r) => (arrived = r))
  const upstream = await listen(() => arrived())
  t.after(() => {
    upstream.server.closeAllConnections()
    upstream.server.close()
  })
  const cfg = config(upstream.url, true)
  ;(cfg.upstreams[0] as { headersTimeoutMs: number }).headersTimeoutMs = 60_000
  const stage = createForwardStage(cfg, deps)
  let outcome!: Promise<unknown>
  const front = await listen((req, res) => {
    outcome = (stage.onRequest(context(req, res, {})) as Promise<void>).then(
      () => 'answered',
      (err: { code?: string }) => err.code,
    )
  })
  const client = request(front.url + '/x')
  client.on('error', () => {})
  client.end()
  t.after(() => {
    client.destroy()
    front.server.closeAllConnections()
    front.server.close()
  })
  await reached
  await stage.close()
  assert.equal(await outcome, 'ERR_FORWARD_UNAVAILABLE', 'the destroyed pool ended the request')
})

test('an upstream answer arriving after the request was answered and recorded elsewhere is dropped, its request aborted', { timeout: 20_000 }, async (t) => {
  // The listener interrupted the request (its body broke) and answered it while its upstream
  // request was in flight; the upstream answers afterwards.
  let answerUpstream!: () => void
  let upstreamClosed!: () => void
  const closedP = new Promise<void>((r) => (upstreamClosed = r))
  const upstream = await listen((req, res) => {
    res.on('close', () => upstreamClosed())
    answerUpstream = () => res.writeHead(200, { 'content-type': 'text/plain' }).write('partial')
  })
  const stage = createForwardStage(config(upstream.url, true), deps)
  let outcome!: Promise<unknown>
  let started!: () => void
  const startedP = new Promise<void>((r) => (started = r))
  let ctx!: RequestContext
  const front = await listen((req, res) => {
    ctx = context(req, res, {}, undefined)
    outcome = (stage.onRequest(ctx) as Promise<void>).then(() => 'resolved', (err: unknown) => err)
    started()
  })
  t.after(async () => {
    await stage.close()
    for (const s of [front.server, upstream.server]) {
      s.closeAllConnections()
      s.close()
    }
  })
  const got = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const r = request(front.url + '/x', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }))
    })
    r.on('error', reject)
    r.end()
  })
  await startedP
  while (answerUpstream === undefined) await new Promise((r) => setTimeout(r, 10))
  // What Pipeline.interrupt does: the answer, then the request is over.
  ctx.res.writeHead(400, { 'content-type': 'text/plain' }).end('refused')
  ctx.over = true
  answerUpstream()
  assert.deepEqual(await got, { status: 400, body: 'refused' })
  assert.equal(await outcome, 'resolved')
  // The upstream request was aborted, not read to its end.
  await closedP
})
