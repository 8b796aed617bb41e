import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Path tricks against the built gateway, sent over raw TCP so that nothing (fetch, URL parsing)
 * cleans the request-target first. The invariant: whatever the trick, the upstream only ever
 * receives the canonical path of a route the caller was allowed on, and never anything under
 * /admin, for a token that lacks the admin scope.
 */

interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Sends one HTTP/1.1 request with the request-target exactly as given (latin1 bytes). */
function rawRequest(base: string, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  const { hostname, port } = new URL(base)
  const lines = [`${method} ${target} HTTP/1.1`, `host: ${hostname}:${port}`, 'connection: close']
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no complete response to ${JSON.stringify(target)}`))
    }, 10_000)
    socket.on('connect', () => socket.write(Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1')))
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('utf8')
      const split = text.indexOf('\r\n\r\n')
      const head = (split === -1 ? text : text.slice(0, split)).split('\r\n')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0)
      const hdrs: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const i = line.indexOf(':')
        if (i > 0) hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
      }
      let body = split === -1 ? '' : text.slice(split + 4)
      if (hdrs['transfer-encoding'] === 'chunked') body = dechunk(body)
      resolve({ status, headers: hdrs, body })
    })
  })
}

function dechunk(s: string): string {
  let out = ''
  for (;;) {
    const nl = s.indexOf('\r\n')
    const size = parseInt(s.slice(0, nl), 16)
    if (!size) return out
    out += s.slice(nl + 2, nl + 2 + size)
    s = s.slice(nl + 2 + size + 2)
  }
}

function problemCode(r: RawResponse): unknown {
  assert.equal(r.headers['content-type'], 'application/problem+json', `status ${r.status} body ${r.body}`)
  return (JSON.parse(r.body) as { code?: unknown }).code
}

/** What the upstream received must never be under /admin, however an upstream would read it. */
function assertNeverAdmin(up: RecordingUpstream): void {
  for (const { url } of up.received) {
    const path = url.split('?')[0]
    // read it the way a lenient upstream might: WHATWG dot-segment removal, one decode, any case
    let decoded: string
    try {
      decoded = decodeURIComponent(new URL(path, 'http://upstream').pathname)
    } catch {
      decoded = path
    }
    for (const view of [path, decoded, decoded.replace(/\\/g, '/')]) {
      assert.doesNotMatch(view.toLowerCase(), /^\/+(?:\.\/)*admin(?:[/;?#]|$)/, `upstream received ${JSON.stringify(url)}`)
    }
  }
}

let ks: KeyServer
let up: RecordingUpstream
let gw: StartedGateway
let ordersToken: string

before(async () => {
  ks = await startKeyServer()
  up = await startUpstream()
  gw = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'up', url: up.url }],
      routes: [
        { id: 'public', path: '/public/**', methods: ['GET'], upstream: 'up', auth: 'public' },
        { id: 'admin', path: '/admin/**', methods: ['GET'], upstream: 'up', auth: 'required', scopes: { allOf: ['admin'] } },
        { id: 'orders', path: '/orders/**', methods: ['GET'], upstream: 'up', auth: 'required', scopes: { allOf: ['orders:read'] } },
      ],
    }),
  )
  // A valid token for this issuer and audience, without the admin scope.
  ordersToken = await ks.sign({ scope: 'orders:read' })
})

after(async () => {
  await gw?.stop()
  await up?.close()
  await ks?.close()
})

const auth = () => ({ authorization: `Bearer ${ordersToken}` })

/** Tricks refused by normalize itself: 400 ERR_NORMALIZE_REJECTED, whoever the caller is. */
const refusedTricks = [
  '/admin%2fx',
  '/admin%2Fx',
  '/public/..%2fadmin/x',
  '/public/%2e%2e%2fadmin/x',
  '/public/%2e%2e%2Fadmin%2fx',
  '/orders/..%2f..%2fadmin/x',
  '/public/..%5cadmin/x',
  '/public\\..\\admin\\x',
  '/public/..\\admin/x',
  '/admin;x=1/x',
  '/public/..;/admin/x',
  '/orders/..;/admin/x',
  '/admin;jsessionid=1',
  '/public/x%3b/../../admin/x',
  '/admin%00/x',
  '/public/%00/../../admin/x',
  '/public/%252e%252e/admin/x',
  '/public/%252e%252e%252fadmin/x',
  '/public/%25%32%65%25%32%65/admin/x',
  '/%2e%2e/admin/x',
  '/../admin/x',
  '/public/../../admin/x',
  '/orders/../../admin/x',
  '/public/%C0%AE%C0%AE/admin/x',
  '/public/%C0%AF..%C0%AFadmin/x',
  '/public/%EF%BC%8E%EF%BC%8E/admin/x',
  '/public/..%EF%BC%8Fadmin/x',
  '/public/%u002e%u002e/admin/x',
  '/public/x#/../../admin/x',
  '/public/%zz',
  'http://127.0.0.1/admin/x',
  '*',
]

for (const target of refusedTricks) {
  test(`refuses ${JSON.stringify(target)} with 400 ERR_NORMALIZE_REJECTED before any upstream sees it`, async () => {
    const before = up.received.length
    const r = await rawRequest(gw.url, target, auth())
    assert.equal(r.status, 400)
    assert.equal(problemCode(r), 'ERR_NORMALIZE_REJECTED')
    assert.equal(up.received.length, before)
    assertNeverAdmin(up)
  })
}

/**
 * Tricks that normalize resolves to a path under /admin: the admin route and its policy apply. With
 * the orders-only token that is 403 insufficient_scope, and the upstream is never reached.
 */
const resolvesToAdmin = [
  '/admin/x',
  '/public/../admin/x',
  '/public/%2e%2e/admin/x',
  '/public/.%2E/admin/x',
  '/public/%2E./admin/x',
  '/public/./../admin/x',
  '/orders/../admin/x',
  '/orders/1/../../admin/x',
  '/orders/%2e%2e/admin/x',
  '//admin/x',
  '/admin//x',
  '/./admin/x',
  '/%2e/admin/x',
  '/%61dmin/x',
  '/public/%2E%2E/%61%64%6D%69%6E/x',
]

for (const target of resolvesToAdmin) {
  test(`sends ${JSON.stringify(target)} through the admin route's policy and never to the upstream`, async () => {
    const before = up.received.length
    const r = await rawRequest(gw.url, target, auth())
    assert.equal(r.status, 403, `status ${r.status}`)
    assert.equal(problemCode(r), 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
    assert.equal(up.received.length, before)
    assertNeverAdmin(up)
  })
}

test('a path that differs from /admin only by letter case matches no route: 404 and no upstream', async () => {
  for (const target of ['/ADMIN/x', '/Admin/x', '/aDmIn', '/%41dmin/x']) {
    const before = up.received.length
    const r = await rawRequest(gw.url, target, auth())
    assert.equal(r.status, 404, target)
    assert.equal(problemCode(r), 'ERR_ROUTE_NOT_FOUND')
    assert.equal(up.received.length, before)
  }
  assertNeverAdmin(up)
})

/** Allowed public requests: the upstream receives exactly the canonical form. */
const publicCases: ReadonlyArray<readonly [string, string]> = [
  ['/public/hello', '/public/hello'],
  ['/public/a/../b', '/public/b'],
  ['/public/a/%2e%2e/b', '/public/b'],
  ['/public/./x', '/public/x'],
  ['/public//x', '/public/x'],
  ['//public/x', '/public/x'],
  ['/admin/../public/x', '/public/x'],
  ['/orders/../public/x', '/public/x'],
  ['/public/%7Euser', '/public/~user'],
  ['/%70ublic/x', '/public/x'],
  ['/public/caf%c3%a9', '/public/caf%C3%A9'],
  ['/public/a+b', '/public/a%2Bb'],
  ['/public/a%20b', '/public/a%20b'],
  ['/public/a|b', '/public/a%7Cb'],
  ['/public/Admin/x', '/public/Admin/x'],
  ['/public/x?next=/../admin&y=%2F', '/public/x?next=/../admin&y=%2F'],
  ['/public/a/..?q=1', '/public/?q=1'],
]

for (const [target, forwarded] of publicCases) {
  test(`forwards ${JSON.stringify(target)} to the upstream as ${JSON.stringify(forwarded)}`, async () => {
    const before = up.received.length
    const r = await rawRequest(gw.url, target)
    assert.equal(r.status, 200, r.body)
    assert.equal(up.received.length, before + 1)
    assert.equal(up.received[before].url, forwarded)
    assertNeverAdmin(up)
  })
}

test('an unknown route gets 404 problem+json without touching any upstream', async () => {
  const before = up.received.length
  for (const target of ['/nowhere', '/', '/publicx/a', '/orders-archive/1', '/public%2fx']) {
    const r = await rawRequest(gw.url, target, auth())
    assert.ok(r.status === 404 || r.status === 400, `${target}: ${r.status}`)
    assert.match(String(problemCode(r)), /^ERR_(ROUTE_NOT_FOUND|NORMALIZE_REJECTED)$/)
  }
  assert.equal(up.received.length, before)
})

test('control characters and spaces in the request-target are refused with 400 before any upstream', async () => {
  const before = up.received.length
  // node's HTTP parser refuses these itself (a plain 400, not problem+json): the stage never runs
  for (const target of ['/public/a\u0000b', '/public/a\tb', '/public/a\u007fb', '/public/a?x=\u0001', '/public/caf\u00e9']) {
    const r = await rawRequest(gw.url, target)
    assert.equal(r.status, 400, JSON.stringify(target))
  }
  assert.equal(up.received.length, before)
})

/** Orders requests with the orders token: 200, and the upstream receives the canonical path. */
const ordersCases: ReadonlyArray<readonly [string, string]> = [
  ['/orders/a/../1', '/orders/1'],
  ['/orders/%31', '/orders/1'],
  ['/orders//1', '/orders/1'],
  ['/public/../orders/1', '/orders/1'],
]

for (const [target, forwarded] of ordersCases) {
  test(`an allowed orders request ${JSON.stringify(target)} reaches the upstream only as ${JSON.stringify(forwarded)}`, async () => {
    const before = up.received.length
    const r = await rawRequest(gw.url, target, auth())
    assert.equal(r.status, 200, `status ${r.status} ${r.body}`)
    assert.equal(up.received.length, before + 1)
    assert.equal(up.received[before].url, forwarded)
    assertNeverAdmin(up)
  })
}

test('without a token an orders path is refused whatever its spelling', async () => {
  const before = up.received.length
  for (const target of ['/orders/1', '/orders/a/../1', '/public/../orders/1']) {
    const r = await rawRequest(gw.url, target)
    assert.equal(r.status, 401, target)
    assert.equal(problemCode(r), 'ERR_AUTHN_MISSING')
  }
  assert.equal(up.received.length, before)
})

// Proves the tests above ran against a gateway that lets valid tokens through.
test('a valid orders token reaches /orders/1 and the upstream receives exactly /orders/1', async () => {
  const before = up.received.length
  const r = await rawRequest(gw.url, '/orders/1', auth())
  assert.equal(r.status, 200, `authn must accept a valid token (got ${r.status} ${r.body})`)
  assert.equal(up.received.length, before + 1)
  assert.equal(up.received[before].url, '/orders/1')
})

test('the upstream never received anything but canonical public and orders paths', () => {
  assert.ok(up.received.length > 0)
  for (const { url } of up.received) {
    assert.match(url, /^\/(?:public|orders)\/[^?]*/, url)
    const path = url.split('?')[0]
    assert.doesNotMatch(path, /\/\/|\/\.\.?(?:\/|$)|%2[Ff]|%5[Cc]|%25|;|\\/, url)
  }
  assertNeverAdmin(up)
})

test('a catch-all public route cannot be used to reach a protected route by changing case or adding a trailing slash', async (t) => {
  const up2 = await startUpstream()
  const gw2 = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'up', url: up2.url }],
      routes: [
        { id: 'admin', path: '/admin/**', methods: ['GET'], upstream: 'up', auth: 'required', scopes: { allOf: ['admin'] } },
        { id: 'billing', path: '/billing', methods: ['GET'], upstream: 'up', auth: 'required', scopes: { allOf: ['admin'] } },
        { id: 'site', path: '/**', methods: ['GET'], upstream: 'up', auth: 'public' },
      ],
      security: {
        acknowledge: [{ rule: 'public-route-catch-all', target: 'site', reason: 'a public site with protected areas: the case under test' }],
      },
    }),
  )
  t.after(async () => {
    await gw2.stop()
    await up2.close()
  })
  // Each would match the public catch-all exactly, yet a case-insensitive or trailing-slash-lenient
  // upstream would serve the protected handler: refused instead.
  for (const target of ['/ADMIN/x', '/Admin', '/aDmIn/users/1', '/BILLING', '/billing/', '/billing//', '/billing/.', '/Billing/']) {
    const r = await rawRequest(gw2.url, target, auth())
    assert.equal(r.status, 400, target)
    assert.equal(problemCode(r), 'ERR_NORMALIZE_REJECTED')
  }
  assert.equal(up2.received.length, 0)
  // the protected routes themselves still go through their policy
  for (const target of ['/billing', '/admin/x', '/admin/x/']) {
    const r = await rawRequest(gw2.url, target, auth())
    assert.equal(r.status, 403, `${target}: ${r.status}`)
    assert.equal(problemCode(r), 'ERR_AUTHZ_INSUFFICIENT_SCOPE', target)
  }
  assert.equal(up2.received.length, 0)
  // and unrelated paths, uppercase or with a trailing slash, reach the catch-all as they are
  for (const target of ['/Docs/Readme.MD', '/docs/', '/']) {
    const r = await rawRequest(gw2.url, target)
    assert.equal(r.status, 200, `${target}: ${r.body}`)
    assert.equal(up2.received.at(-1)?.url, target)
  }
  assertNeverAdmin(up2)
})
