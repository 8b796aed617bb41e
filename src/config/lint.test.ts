import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isLoopbackHost, judgeFindings, LINT_RULES, lintConfig, nghttp2Vulnerable, type LintFinding } from './lint.js'
import { formatIssues, loadConfigText, type ConfigIssue } from './load.js'

type Obj = Record<string, unknown>

const issuer = (extra: Obj = {}): Obj => ({ id: 'main', issuer: 'https://idp.example.com/', jwksUri: 'https://idp.example.com/jwks', audiences: ['api://x'], ...extra })

function config(parts: { listeners?: unknown[]; server?: Obj; issuers?: unknown[]; upstreams?: unknown[]; routes?: unknown[]; acknowledge?: unknown[] } = {}): Obj {
  return {
    version: 1,
    listeners: parts.listeners ?? [{ host: '127.0.0.1', port: 0 }],
    ...(parts.server ? { server: parts.server } : {}),
    issuers: parts.issuers ?? [issuer()],
    upstreams: parts.upstreams ?? [{ id: 'app', url: 'https://app.internal' }],
    routes: parts.routes ?? [{ id: 'api', path: '/api/**', upstream: 'app', auth: 'required' }],
    ...(parts.acknowledge ? { security: { acknowledge: parts.acknowledge } } : {}),
  }
}

function lint(c: Obj, env: NodeJS.ProcessEnv = {}): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const r = loadConfigText(JSON.stringify(c, null, 2), 'c.json', env)
  return r.ok ? { errors: [], warnings: [...r.warnings] } : { errors: [...r.errors], warnings: [...(r.warnings ?? [])] }
}
const rules = (issues: ConfigIssue[]) => issues.map((i) => i.rule ?? `(no rule) ${i.message}`)

test('the baseline config has no findings at all', () => {
  const r = lint(config())
  assert.deepEqual(r, { errors: [], warnings: [] }, formatIssues(r.errors))
})

const cases: Array<[rule: string, broken: Obj, path: string]> = [
  ['alg-none', config({ issuers: [issuer({ algorithms: ['RS256', 'none'] })] }), '/issuers/0/algorithms/1'],
  ['issuer-no-audience', config({ issuers: [issuer({ audiences: [] })] }), '/issuers/0/audiences'],
  ['issuer-insecure-url', config({ issuers: [issuer({ jwksUri: 'http://idp.example.com/jwks' })] }), '/issuers/0/jwksUri'],
  ['token-lifetime-long', config({ issuers: [issuer({ maxTokenLifetimeSec: 86_401 })] }), '/issuers/0/maxTokenLifetimeSec'],
  ['clock-skew-large', config({ issuers: [issuer({ clockSkewSec: 121 })] }), '/issuers/0/clockSkewSec'],
  ['listener-public-plain', config({ listeners: [{ host: '0.0.0.0', port: 0 }] }), '/listeners/0/host'],
  ['public-route-catch-all', config({ routes: [{ path: '/**', upstream: 'app', auth: 'public' }] }), '/routes/0/path'],
  ['trusted-proxies-any', config({ server: { trustedProxies: ['::/0'] } }), '/server/trustedProxies/0'],
]

for (const [rule, broken, path] of cases) {
  test(`${rule} refuses the config with the rule id and the path of the field`, () => {
    const r = lint(broken)
    assert.deepEqual(rules(r.errors), [rule], formatIssues(r.errors))
    assert.equal(r.errors[0].path, path)
    assert.ok(r.errors[0].line! > 1, 'the finding is located in the source')
  })
}

test('HMAC issuers: the algorithm needs an acknowledgement, a short key and an inline key are flagged separately', () => {
  const hs = (sharedSecret: string) => config({ issuers: [issuer({ algorithms: ['HS256', 'HS512'], sharedSecret })] })
  assert.deepEqual(rules(lint(hs('${env:K}'), { K: 'k'.repeat(64) }).errors), ['hmac-algorithm'])
  // HS512 needs 64 bytes (RFC 7518 §3.2), even though HS256 alone would take 32.
  assert.deepEqual(rules(lint(hs('${env:K}'), { K: 'k'.repeat(63) }).errors), ['hmac-algorithm', 'hmac-secret-short'])
  assert.deepEqual(rules(lint(hs('k'.repeat(64))).errors), ['hmac-algorithm', 'hmac-secret-inline'])
})

test('plain http to loopback is fine for issuers and upstreams; an http upstream elsewhere is only a warning', () => {
  const local = lint(config({ issuers: [issuer({ jwksUri: 'http://127.0.0.1:8080/jwks', discoveryUrl: 'http://localhost/.well-known/openid-configuration' })], upstreams: [{ id: 'app', url: 'http://[::1]:3000' }] }))
  assert.deepEqual(local, { errors: [], warnings: [] })
  const remote = lint(config({ upstreams: [{ id: 'app', url: 'http://orders:3000' }] }))
  assert.deepEqual(rules(remote.errors), [])
  assert.deepEqual(rules(remote.warnings), ['upstream-insecure-url'])
  // Each replica is judged like url.
  const replica = lint(config({ upstreams: [{ id: 'app', url: 'https://orders-1:3000', replicas: ['https://orders-2:3000', 'http://orders-3:3000'] }] }))
  assert.deepEqual(replica.warnings.map((w) => w.path), ['/upstreams/0/replicas/1'])
})

test('an acknowledged finding becomes a warning carrying the reason; a target limits it to one issuer', () => {
  const c = config({
    issuers: [issuer({ audiences: [] }), issuer({ id: 'other', issuer: 'https://other.example.com/', audiences: [] })],
    acknowledge: [{ rule: 'issuer-no-audience', target: 'main', reason: 'the IdP sets no aud' }],
  })
  const r = lint(c)
  assert.deepEqual(
    r.errors.map((e) => [e.rule, e.path]),
    [['issuer-no-audience', '/issuers/1/audiences']],
  )
  assert.deepEqual(
    r.warnings.map((w) => [w.rule, w.path, w.acknowledged]),
    [['issuer-no-audience', '/issuers/0/audiences', 'the IdP sets no aud']],
  )
  const all = lint({ ...c, security: { acknowledge: [{ rule: 'issuer-no-audience', reason: 'both' }] } })
  assert.deepEqual(all.errors, [])
  assert.equal(all.warnings.length, 2)
})

test('a listener is acknowledged by host:port', () => {
  const c = config({ listeners: [{ host: '0.0.0.0', port: 8080 }], acknowledge: [{ rule: 'listener-public-plain', target: '0.0.0.0:8080', reason: 'TLS ends at the load balancer' }] })
  const r = lint(c)
  assert.deepEqual(r.errors, [])
  assert.deepEqual(rules(r.warnings), ['listener-public-plain'])
})

test('alg-none and hmac-secret-short cannot be acknowledged, and saying so is itself an error', () => {
  const c = config({
    issuers: [issuer({ algorithms: ['RS256', 'none'] })],
    acknowledge: [{ rule: 'alg-none', reason: 'please' }],
  })
  const r = lint(c)
  assert.deepEqual(rules(r.errors), ['alg-none', '(no rule) rule "alg-none" cannot be acknowledged: fix the setting'])
  assert.equal(r.errors[1].path, '/security/acknowledge/0/rule')
  assert.equal(LINT_RULES['hmac-secret-short'].acknowledgeable, false)
})

test('an unknown rule in an acknowledgement is an error with a suggestion; one that matches nothing is a warning', () => {
  const typo = lint(config({ acknowledge: [{ rule: 'issuer-no-audiences', reason: 'x' }] }))
  assert.match(typo.errors[0].message, /unknown lint rule "issuer-no-audiences", did you mean "issuer-no-audience"\?/)
  const stale = lint(config({ acknowledge: [{ rule: 'clock-skew-large', target: 'main', reason: 'x' }] }))
  assert.deepEqual(stale.errors, [])
  assert.equal(stale.warnings[0].path, '/security/acknowledge/0/target')
  assert.match(stale.warnings[0].message, /matches no finding/)
})

test('judgeFindings keeps warning-level rules as warnings even without acknowledgement', () => {
  const f: LintFinding = { rule: 'upstream-insecure-url', target: 'app', path: '/upstreams/0/url', message: 'm' }
  const v = judgeFindings([f], [])
  assert.deepEqual([v.errors.length, v.warnings.length], [0, 1])
})

test('loopback means localhost names, 127.0.0.0/8 and ::1, nothing else', () => {
  for (const h of ['localhost', 'api.localhost', '127.0.0.1', '127.9.9.9', '::1', '[::1]', 'LOCALHOST.']) assert.ok(isLoopbackHost(h), h)
  for (const h of ['0.0.0.0', '::', '10.0.0.1', 'localhost.example.com', 'example.com', '128.0.0.1']) assert.ok(!isLoopbackHost(h), h)
})

test('trusted-proxies-any catches every range that trusts (nearly) all clients of a family, IPv4-mapped ranges included', () => {
  const broad = ['0.0.0.0/0', '0.0.0.0/1', '64.0.0.0/7', '::/0', '::/1', '::ffff:0.0.0.0/96', '::/80', '::ffff:0.0.0.0/97', '::ffff:0:0/103', '2000::/3', '2a00::/12', 'fc00::/6']
  const narrow = ['10.0.0.0/8', '172.16.0.0/12', '203.0.113.7', '::/96', '::ffff:10.0.0.0/104', '2001:db8::/32', '2a00::/16', 'fd00::/8', 'fc00::/7', 'fe80::/10', '::1']
  const r = lint(config({ server: { trustedProxies: [...broad, ...narrow] } }))
  assert.deepEqual(
    r.errors.map((e) => [e.rule, e.path]),
    broad.map((_, i) => ['trusted-proxies-any', `/server/trustedProxies/${i}`]),
    formatIssues(r.errors),
  )
  assert.match(r.errors[broad.indexOf('::ffff:0.0.0.0/96')].message, /IPv4-mapped block ::ffff:0:0\/96, so it holds every IPv4 client/)
  assert.match(r.errors[broad.indexOf('0.0.0.0/1')].message, /IPv4 \/1, wider than a \/8/)
  // The acknowledgement mechanism is unchanged: the findings become warnings.
  const acked = lint(config({ server: { trustedProxies: ['::ffff:0.0.0.0/96'] }, acknowledge: [{ rule: 'trusted-proxies-any', reason: 'proxies rewrite every address' }] }))
  assert.deepEqual(acked.errors, [])
  assert.deepEqual(rules(acked.warnings), ['trusted-proxies-any'])
})

test('a listener with TLS may bind a public address; its key must come from a reference, and a key that is not the certificate\'s is refused', async () => {
  const { generate } = await import('selfsigned')
  const a = await generate([{ name: 'commonName', value: 'a' }], { keySize: 2048 })
  const b = await generate([{ name: 'commonName', value: 'b' }], { keySize: 2048 })
  const env = { CERT: a.cert, KEY: a.private, OTHER_KEY: b.private }
  const tls = (key: string) => config({ listeners: [{ host: '0.0.0.0', port: 0, tls: { cert: '${env:CERT}', key } }] })
  assert.deepEqual(lint(tls('${env:KEY}'), env), { errors: [], warnings: [] })
  const inline = lint(tls(a.private), env)
  assert.deepEqual(rules(inline.errors), ['tls-key-inline'])
  assert.equal(inline.errors[0].path, '/listeners/0/tls/key')
  const mismatch = lint(tls('${env:OTHER_KEY}'), env)
  assert.equal(mismatch.errors.length, 1, formatIssues(mismatch.errors))
  assert.equal(mismatch.errors[0].path, '/listeners/0/tls')
  assert.match(mismatch.errors[0].message, /cannot be used for TLS \(ERR_OSSL_[A-Z0-9_]+\)/)
  assert.ok(!formatIssues(mismatch.errors).includes(b.private.split('\n')[1]), 'the key is not shown')
  // Client CAs: needed for require, and every certificate of the bundle must parse.
  const mtls = (tls: Obj) => lint(config({ listeners: [{ host: '127.0.0.1', port: 0, tls: { cert: '${env:CERT}', key: '${env:KEY}', ...tls } }] }), env)
  assert.match(mtls({ clientCertificates: 'require' }).errors[0].message, /require needs clientCa/)
  assert.deepEqual(mtls({ clientCertificates: 'require', clientCa: '${env:CERT}' }), { errors: [], warnings: [] })
  assert.match(mtls({ clientCertificates: 'request', clientCa: 'not a certificate' }).errors[0].message, /clientCa holds no PEM certificate/)
  const broken = `${a.cert}\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`
  assert.match(mtls({ clientCertificates: 'request', clientCa: broken }).errors[0].message, /certificate 2 of clientCa cannot be read/)
  // The minimum version is TLS 1.2 unless raised; older versions are not a choice.
  const old = lint(config({ listeners: [{ host: '127.0.0.1', port: 0, tls: { cert: '${env:CERT}', key: '${env:KEY}', minVersion: 'TLSv1.1' } }] }), env)
  assert.equal(old.errors[0].path, '/listeners/0/tls/minVersion')
})

test('nghttp2Vulnerable: releases before 1.68.1 (CVE-2026-27135) and versions it cannot read', () => {
  for (const v of ['1.61.0', '1.68.0', '1.9.9', '0.99.99', '1.68', '', 'x.y.z', undefined]) assert.equal(nghttp2Vulnerable(v), true, String(v))
  for (const v of ['1.68.1', '1.68.10', '1.69.0', '2.0.0']) assert.equal(nghttp2Vulnerable(v), false, v)
})

test('listener-http2-vulnerable: h2c and tls.http2 listeners on an nghttp2 before 1.68.1, by host:port; HTTP/1.1 listeners and a fixed nghttp2 give none', () => {
  const loaded = loadConfigText(JSON.stringify(config({ acknowledge: [] })), 'c.json', {})
  assert.ok(loaded.ok)
  const base = loaded.config
  const listeners = [
    { ...base.listeners[0], host: '127.0.0.1', port: 8443, h2c: false, tls: { cert: 'c', key: 'k', http2: true } },
    { ...base.listeners[0], host: '127.0.0.1', port: 8080, h2c: true },
    { ...base.listeners[0], host: '127.0.0.1', port: 8081, h2c: false },
  ]
  const withListeners = { ...base, listeners } as unknown as typeof base
  const found = (nghttp2: string) => lintConfig(withListeners, { wholeRefPaths: new Set(['/listeners/0/tls/key']), nghttp2 }).filter((f) => f.rule === 'listener-http2-vulnerable')
  assert.deepEqual(
    found('1.61.0').map((f) => [f.target, f.path]),
    [
      ['127.0.0.1:8443', '/listeners/0/tls/http2'],
      ['127.0.0.1:8080', '/listeners/1/h2c'],
    ],
  )
  assert.match(found('1.61.0')[0].message, /nghttp2 1\.61\.0.*CVE-2026-27135/)
  assert.deepEqual(found('1.68.1'), [])
})

test("on this process's nghttp2, an h2c listener is refused unless acknowledged when that nghttp2 is vulnerable, and passes when it is not", () => {
  const h2c = (acknowledge?: unknown[]) => lint(config({ listeners: [{ host: '127.0.0.1', port: 8080, h2c: true }], acknowledge }))
  if (nghttp2Vulnerable(process.versions.nghttp2)) {
    assert.deepEqual(rules(h2c().errors), ['listener-http2-vulnerable'])
    const acknowledged = h2c([{ rule: 'listener-http2-vulnerable', target: '127.0.0.1:8080', reason: 'behind a proxy that speaks HTTP/1.1 to us' }])
    assert.deepEqual(acknowledged.errors, [])
    assert.deepEqual(rules(acknowledged.warnings), ['listener-http2-vulnerable'])
  } else assert.deepEqual(h2c(), { errors: [], warnings: [] })
})
