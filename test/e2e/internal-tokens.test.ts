import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { gatewayTokenVerifier, isVerifyError, type Identity, type Verifier } from '@portcullis/verify'
import { authenticate, sendProblem } from '@portcullis/verify/node-http'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
import { createKeySchedule } from '../../src/tokens/key-schedule.js'
import { parseKeySet } from '../../src/tokens/key-set.js'

const run = promisify(execFile)
const JWKS_PATH = '/.well-known/portcullis/jwks.json'
const GATEWAY_ISS = 'https://gateway.test'
const CALLER_AUD = 'api://shop'

/** Runs the built CLI, as an operator does. */
async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args])
  return stdout
}

const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>
function jwt(authorization: string): { header: Record<string, unknown>; payload: Record<string, unknown>; token: string } {
  const token = authorization.replace(/^Bearer /, '')
  const [h, p] = token.split('.')
  return { header: decode(h), payload: decode(p), token }
}

interface KeyFileEntry {
  kid: string
  state: string
  retireAt?: string
  privateJwk: { d: string }
}
const keyFile = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { keys: KeyFileEntry[] }

/**
 * A service as a user writes one with @portcullis/verify: every request is verified, whoever sent
 * it, and the answer shows the identity the service itself verified.
 */
interface Service {
  readonly url: string
  /** Authorization headers this service received. */
  readonly seen: Array<string | undefined>
  close(): Promise<void>
}
async function startService(name: string, verifier: () => Verifier): Promise<Service> {
  const seen: Array<string | undefined> = []
  const server: Server = createServer((req: IncomingMessage, res) => {
    seen.push(req.headers.authorization)
    authenticate(verifier(), req).then(
      (identity: Identity) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ service: name, subject: identity.subject, clientId: identity.clientId, scopes: [...identity.scopes], act: identity.act, requestId: req.headers['x-request-id'] }))
      },
      (err: unknown) => {
        if (isVerifyError(err)) sendProblem(res, err)
        else res.writeHead(500).end()
      },
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}

/** A verifier of a fresh service: no verified-token cache, JWKS fetched on first use. */
function freshVerifier(gw: StartedGateway, audience: string, now?: () => number): Verifier {
  return gatewayTokenVerifier({ gatewayIssuer: GATEWAY_ISS, audience, jwksUri: gw.url + JWKS_PATH, tokenCacheSize: 0, ...(now ? { now } : {}) })
}

/** Writes the gateway config next to a freshly generated key set, referenced as ${file:keys.json}. */
async function gatewayWithKeys(ks: KeyServer, upstreams: Record<string, string>, extra: Record<string, unknown> = {}): Promise<{ gw: StartedGateway; keysFile: string }> {
  const configPath = writeConfig(
    baseConfig({
      issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [CALLER_AUD], algorithms: ['RS256'] }],
      internalTokens: { issuer: GATEWAY_ISS, signingKeys: '${file:keys.json}', ttlSec: 30, ...extra },
      upstreams: [
        { id: 'orders', url: upstreams.orders, audience: 'orders' },
        { id: 'users', url: upstreams.users, audience: 'users' },
        { id: 'plain', url: upstreams.plain },
      ],
      routes: [
        { id: 'orders', path: '/orders/**', methods: ['GET'], upstream: 'orders', auth: 'required', upstreamToken: 'internal' },
        { id: 'users', path: '/users/**', methods: ['GET'], upstream: 'users', auth: 'required', upstreamToken: 'internal' },
        { id: 'plain', path: '/plain/**', methods: ['GET'], upstream: 'plain', auth: 'required' },
      ],
    }),
  )
  const keysFile = join(dirname(configPath), 'keys.json')
  await cli('keys', 'generate', '--out', keysFile)
  return { gw: await startGateway(configPath), keysFile }
}

describe('internal tokens: client → gateway → service, identity verified twice', () => {
  let ks: KeyServer
  let gw: StartedGateway
  let keysFile: string
  let orders: Service
  let users: Service
  let plain: RecordingUpstream
  let ordersVerifier: Verifier | undefined
  let usersVerifier: Verifier | undefined

  before(async () => {
    ks = await startKeyServer({ audience: CALLER_AUD })
    // The services learn the gateway's JWKS URL once it listens; they are created first, so their
    // addresses can go into its config.
    orders = await startService('orders', () => (ordersVerifier ??= gatewayTokenVerifier({ gatewayIssuer: GATEWAY_ISS, audience: 'orders', jwksUri: gw.url + JWKS_PATH })))
    users = await startService('users', () => (usersVerifier ??= gatewayTokenVerifier({ gatewayIssuer: GATEWAY_ISS, audience: 'users', jwksUri: gw.url + JWKS_PATH })))
    plain = await startUpstream()
    ;({ gw, keysFile } = await gatewayWithKeys(ks, { orders: orders.url, users: users.url, plain: plain.url }))
  })
  after(async () => {
    await gw?.stop()
    await Promise.all([orders?.close(), users?.close(), plain?.close(), ks?.close()])
  })

  test('the key set file is written with mode 0600', () => {
    assert.equal(statSync(keysFile).mode & 0o777, 0o600)
  })

  test('a request on an internal route reaches the service with a token minted for it, which the service verifies (200, identity visible)', async () => {
    const caller = await ks.sign({ sub: 'alice', client_id: 'shop-web', scope: 'orders:read profile', jti: 'caller-jti-1' })
    const res = await fetch(gw.url + '/orders/42', { headers: { authorization: `Bearer ${caller}` } })
    assert.equal(res.status, 200)
    const body = (await res.json()) as Record<string, unknown>
    assert.equal(body.service, 'orders')
    assert.equal(body.subject, 'alice')
    assert.equal(body.clientId, 'shop-web')
    assert.deepEqual(body.scopes, ['orders:read', 'profile'])
    assert.deepEqual(body.act, { sub: GATEWAY_ISS }, 'RFC 8693: the gateway acts, the caller stays the subject')

    const sent = orders.seen.at(-1)!
    assert.ok(!sent.includes(caller), 'the caller token is not forwarded on an internal route')
    const { header, payload } = jwt(sent)
    const current = keyFile(keysFile).keys.find((k) => k.state === 'current')!
    assert.deepEqual(header, { alg: 'EdDSA', typ: 'portcullis-at+jwt', kid: current.kid })
    assert.equal(payload.iss, GATEWAY_ISS)
    assert.equal(payload.aud, 'orders')
    assert.equal(payload.orig_iss, ks.issuer)
    assert.equal(payload.orig_jti, 'caller-jti-1')
    assert.equal(payload.scope, 'orders:read profile')
    assert.equal(typeof payload.jti, 'string')
    assert.ok((payload.exp as number) - (payload.iat as number) <= 30, 'lifetime at most ttlSec')
    assert.equal(payload.req_id, undefined, 'the request id travels in X-Request-Id, not in the (cached) token')
    assert.equal(body.requestId, res.headers.get('x-request-id'))
  })

  test('a forward route still passes the caller token unchanged', async () => {
    const caller = await ks.sign({ sub: 'bob' })
    const res = await fetch(gw.url + '/plain/x', { headers: { authorization: `Bearer ${caller}` } })
    assert.equal(res.status, 200)
    assert.equal(plain.received.at(-1)!.headers.authorization, `Bearer ${caller}`)
  })

  test('an internal token never outlives the caller token it speaks for', async () => {
    const exp = Math.floor(Date.now() / 1000) + 8
    const caller = await ks.sign({ sub: 'carol', exp })
    assert.equal((await fetch(gw.url + '/orders/1', { headers: { authorization: `Bearer ${caller}` } })).status, 200)
    assert.ok((jwt(orders.seen.at(-1)!).payload.exp as number) <= exp)
  })

  test('minted tokens are cached per (caller token, audience): same caller and service → same token; other service or caller → another', async () => {
    const a = await ks.sign({ sub: 'dave' })
    const b = await ks.sign({ sub: 'erin' })
    const get = async (path: string, token: string, service: Service) => {
      const res = await fetch(gw.url + path, { headers: { authorization: `Bearer ${token}` } })
      assert.equal(res.status, 200)
      return service.seen.at(-1)!
    }
    const first = await get('/orders/1', a, orders)
    const second = await get('/orders/2', a, orders)
    assert.equal(second, first, 'one signature serves the same caller on the same audience')
    const forUsers = await get('/users/1', a, users)
    assert.notEqual(forUsers, first)
    assert.equal(jwt(forUsers).payload.aud, 'users')
    const otherCaller = await get('/orders/3', b, orders)
    assert.notEqual(otherCaller, first)
    assert.equal(jwt(otherCaller).payload.sub, 'erin')
  })

  test('bypassing the gateway: the service refuses no token, the caller’s own token, a token minted for another service, and an expired one', async () => {
    const caller = await ks.sign({ sub: 'mallory', scope: 'orders:read' })
    assert.equal((await fetch(gw.url + '/users/me', { headers: { authorization: `Bearer ${caller}` } })).status, 200)
    const forUsers = users.seen.at(-1)!
    assert.equal((await fetch(gw.url + '/orders/9', { headers: { authorization: `Bearer ${caller}` } })).status, 200)
    const forOrders = orders.seen.at(-1)!

    const direct = async (headers: Record<string, string>) => {
      const res = await fetch(orders.url + '/orders/9', { headers })
      return { status: res.status, code: ((await res.json()) as { code: string }).code, challenge: res.headers.get('www-authenticate') }
    }
    const none = await direct({})
    assert.equal(none.status, 401)
    assert.equal(none.code, 'ERR_AUTHN_MISSING')
    const external = await direct({ authorization: `Bearer ${caller}` })
    assert.equal(external.status, 401)
    assert.equal(external.code, 'ERR_AUTHN_INVALID_TOKEN')
    assert.match(external.challenge ?? '', /error="invalid_token"/)
    const otherAudience = await direct({ authorization: forUsers })
    assert.equal(otherAudience.status, 401)
    assert.equal(otherAudience.code, 'ERR_AUTHN_INVALID_TOKEN')

    // Expired: the same genuine token, judged by a service whose clock is two minutes ahead
    // (an injected clock, not a wait).
    const later = await startService('orders-later', () => freshVerifier(gw, 'orders', () => Date.now() + 120_000))
    try {
      const res = await fetch(later.url + '/orders/9', { headers: { authorization: forOrders } })
      assert.equal(res.status, 401)
      assert.equal(((await res.json()) as { code: string }).code, 'ERR_AUTHN_EXPIRED')
    } finally {
      await later.close()
    }
    // The control: the same token, now, is accepted by a fresh service.
    await freshVerifier(gw, 'orders').verify(forOrders)
  })

  test('the gateway refuses an invalid caller token before minting anything', async () => {
    const before = orders.seen.length
    const res = await fetch(gw.url + '/orders/1', { headers: { authorization: 'Bearer not.a.token' } })
    assert.equal(res.status, 401)
    assert.equal(orders.seen.length, before)
  })

  test('the JWKS is served on its path with public keys only, cacheable for at most jwksMaxAgeSec; HEAD works, POST is refused', async () => {
    const res = await fetch(gw.url + JWKS_PATH)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
    const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1])
    assert.ok(maxAge >= 0 && maxAge <= 60, `max-age ${maxAge}`)
    const jwks = (await res.json()) as { keys: Array<Record<string, unknown>> }
    const current = keyFile(keysFile).keys.find((k) => k.state === 'current')!
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      [current.kid],
    )
    for (const k of jwks.keys) {
      assert.equal(k.d, undefined, 'no private member')
      assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    }
    const head = await fetch(gw.url + JWKS_PATH, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(await head.text(), '')
    const post = await fetch(gw.url + JWKS_PATH, { method: 'POST' })
    assert.equal(post.status, 405)
    assert.equal(((await post.json()) as { code: string }).code, 'ERR_ROUTE_METHOD_NOT_ALLOWED')
  })

  test('no private key and no internal token ever appears in the gateway output', () => {
    const out = gw.lines.map((l) => JSON.stringify(l)).join('\n') + gw.stderr()
    for (const k of keyFile(keysFile).keys) assert.ok(!out.includes(k.privateJwk.d))
    for (const sent of [...orders.seen, ...users.seen]) if (sent) assert.ok(!out.includes(jwt(sent).token.split('.')[2]))
  })
})

test('key rotation: tokens signed before the rotation verify during the overlap, and not after it', async (t) => {
  const ks = await startKeyServer({ audience: CALLER_AUD })
  const plain = await startUpstream((_req, res) => res.writeHead(200).end())
  // A recording upstream stands in for the service: this test verifies with fresh verifiers.
  const upstream = await startUpstream()
  const { gw, keysFile } = await gatewayWithKeys(ks, { orders: upstream.url, users: upstream.url, plain: plain.url })
  t.after(async () => {
    await gw.stop()
    await Promise.all([plain.close(), upstream.close(), ks.close()])
  })
  const call = async (token: string) => {
    const res = await fetch(gw.url + '/orders/1', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    return upstream.received.at(-1)!.headers.authorization as string
  }
  const listed = async () => ((await (await fetch(gw.url + JWKS_PATH)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)

  const caller = await ks.sign({ sub: 'alice' })
  const before = await call(caller)
  const oldKid = jwt(before).header.kid as string

  // Rotate with a short overlap and no publish-ahead, then reload (SIGHUP) as the docs say.
  const overlapSec = 10
  await cli('keys', 'rotate-signing', '--keys', keysFile, '--overlap', String(overlapSec), '--publish-ahead', '0')
  const file = keyFile(keysFile)
  const newKid = file.keys.find((k) => k.state === 'current')!.kid
  assert.notEqual(newKid, oldKid)
  assert.equal(file.keys.find((k) => k.kid === oldKid)?.state, 'previous')
  assert.equal(statSync(keysFile).mode & 0o777, 0o600)
  gw.child.kill('SIGHUP')
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true, 15_000)

  // During the overlap: both keys published; new tokens use the new key; old tokens still verify.
  assert.deepEqual((await listed()).sort(), [oldKid, newKid].sort())
  const afterRotation = await call(caller)
  assert.equal(jwt(afterRotation).header.kid, newKid, 'the reloaded gateway signs with the new key (its cache started empty)')
  await freshVerifier(gw, 'orders').verify(before)
  await freshVerifier(gw, 'orders').verify(afterRotation)

  // After the overlap the old key leaves the JWKS by itself (no reload needed): wait for it,
  // bounded only to avoid a hang.
  const deadline = Date.now() + (overlapSec + 30) * 1000
  while ((await listed()).includes(oldKid)) {
    assert.ok(Date.now() < deadline, 'the previous key was never retired from the JWKS')
    await new Promise((r) => setTimeout(r, 250))
  }
  assert.deepEqual(await listed(), [newKid])
  // Refused because its key is gone (the kid is looked up before any claim is checked).
  await assert.rejects(freshVerifier(gw, 'orders').verify(before), (err: unknown) => isVerifyError(err) && err.code === 'ERR_AUTHN_INVALID_TOKEN' && err.reason === 'unknown_kid')
  await freshVerifier(gw, 'orders').verify(afterRotation)
})

test('an emergency rotation right after a normal one takes every earlier key out of the JWKS, the one still signing included', async () => {
  const keys = join(dirname(writeConfig({})), 'keys.json')
  await cli('keys', 'generate', '--out', keys)
  const first = keyFile(keys).keys[0].kid
  // A normal rotation: the new key is published ahead, so the first key keeps signing for a minute.
  await cli('keys', 'rotate-signing', '--keys', keys)
  const pending = keyFile(keys).keys.find((k) => k.state === 'current')!.kid
  // The signing key leaks within that minute: rotate it out at once.
  const out = await cli('keys', 'rotate-signing', '--keys', keys, '--publish-ahead', '0', '--overlap', '0')
  const now = Date.now()
  const { document, keys: loaded } = parseKeySet(readFileSync(keys, 'utf8'))
  const current = document.keys.find((k) => k.state === 'current')!.kid
  assert.deepEqual(
    createKeySchedule(loaded).publishedAt(now).map((k) => k.kid),
    [current],
    'only the new key is published',
  )
  assert.equal(createKeySchedule(loaded).signerAt(now)?.kid, current)
  for (const kid of [first, pending]) assert.match(out, new RegExp(`previous key +${kid} \\(EdDSA\\): published no longer`))
})

test('check-config refuses an internal route without auth or without an upstream audience, one without internalTokens, and inline signing keys', async () => {
  const dir = dirname(writeConfig({}))
  const keys = join(dir, 'keys.json')
  await cli('keys', 'generate', '--out', keys)
  const check = async (config: Record<string, unknown>) => {
    const result = await run(process.execPath, [CLI, 'check-config', '--json', writeConfig(config)]).catch((e: { stdout: string; code: number }) => e)
    assert.equal((result as { code?: number }).code, 1)
    const { errors } = JSON.parse(result.stdout) as { errors: Array<{ path: string; message: string; rule?: string }> }
    return { text: result.stdout, at: (path: string) => errors.filter((e) => e.path === path) }
  }
  const base = {
    issuers: [{ id: 'idp', issuer: 'https://idp.test', jwksUri: 'https://idp.test/jwks', audiences: ['a'] }],
    upstreams: [{ id: 'svc', url: 'http://127.0.0.1:1' }],
    routes: [
      { id: 'open', path: '/open/**', upstream: 'svc', auth: 'public', upstreamToken: 'internal' },
      { id: 'closed', path: '/closed/**', upstream: 'svc', auth: 'required', upstreamToken: 'internal' },
    ],
  }
  const inline = await check(baseConfig({ ...base, internalTokens: { issuer: GATEWAY_ISS, signingKeys: readFileSync(keys, 'utf8') } }))
  assert.ok(inline.at('/routes/0/upstreamToken').some((e) => /auth: required/.test(e.message)))
  assert.ok(inline.at('/routes/0/upstreamToken').some((e) => /audience/.test(e.message)))
  assert.ok(inline.at('/routes/1/upstreamToken').some((e) => /audience/.test(e.message)))
  assert.ok(inline.at('/internalTokens/signingKeys').some((e) => e.rule === 'signing-keys-inline'))
  assert.ok(!inline.text.includes(keyFile(keys).keys[0].privateJwk.d), 'the key is never echoed')

  const without = await check(baseConfig({ ...base, upstreams: [{ id: 'svc', url: 'http://127.0.0.1:1', audience: 'svc' }] }))
  assert.ok(without.at('/routes/1/upstreamToken').some((e) => /needs internalTokens/.test(e.message)))
  assert.equal(without.at('/routes/1/upstreamToken').length, 1)
})
