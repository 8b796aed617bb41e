import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatIssues, loadConfigFile, loadConfigText, type ConfigIssue, type LoadResult } from './load.js'
import { newKeySet, serializeKeySet } from '../tokens/key-set.js'

const FILE = 'portcullis.yaml'

/** A config that passes everything, to which each test adds one mistake. */
const VALID = `version: 1
listeners:
  - port: 0
issuers:
  - id: main
    discoveryUrl: https://idp.example.com/.well-known/openid-configuration
    audiences: [api://orders]
upstreams:
  - id: orders
    url: http://127.0.0.1:3000
routes:
  - path: /orders/:id
    upstream: orders
    auth: required
`

function errorsOf(result: LoadResult): readonly ConfigIssue[] {
  assert.equal(result.ok, false, 'expected the config to be refused')
  return result.ok ? [] : result.errors
}

function only(result: LoadResult): ConfigIssue {
  const errors = errorsOf(result)
  assert.equal(errors.length, 1, formatIssues(errors))
  return errors[0]
}

test('a valid config loads with the schema defaults applied and is deep-frozen', () => {
  const r = loadConfigText(VALID, FILE, {})
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  assert.equal(r.config.listeners[0].host, '127.0.0.1')
  assert.deepEqual(r.config.routes[0].methods, ['GET', 'HEAD'])
  assert.equal(r.config.identity.headers.subject, 'x-auth-subject')
  assert.equal(r.config.server.healthPath, '/healthz')
  assert.ok(Object.isFrozen(r.config.routes[0].methods))
  assert.throws(() => {
    ;(r.config.issuers[0] as { id: string }).id = 'changed'
  }, TypeError)
})

test('a JSON document is accepted and its errors carry lines too', () => {
  const json = JSON.stringify({ version: 1, listeners: [{ port: 0 }], upstreams: [{ id: 'a', url: 'http://127.0.0.1:1' }], routes: [{ path: '/x', upstream: 'a', auth: 'open' }] }, null, 2)
  const e = only(loadConfigText(json, 'c.json', {}))
  assert.equal(e.path, '/routes/0/auth')
  assert.equal(e.line, json.split('\n').findIndex((l) => l.includes('"open"')) + 1)
})

test('a union of literals gives one message listing the allowed values, at the line and column of the value', () => {
  const e = only(loadConfigText(VALID.replace('auth: required', 'auth: maybe'), FILE, {}))
  assert.deepEqual({ line: e.line, column: e.column, path: e.path, message: e.message }, { line: 14, column: 11, path: '/routes/0/auth', message: 'must be one of: required, public, certificate' })
})

test('an unknown field is reported at its key, with the allowed fields and a suggestion', () => {
  const e = only(loadConfigText(VALID.replace('    audiences:', '    audience: x\n    audiences:'), FILE, {}))
  assert.equal(e.path, '/issuers/0/audience')
  assert.equal(e.line, 7)
  assert.equal(e.column, 5)
  assert.match(e.message, /^unknown field "audience", did you mean "audiences"\? \(allowed: id, discoveryUrl, /)
})

test('a missing required field names the field and points at the object that lacks it', () => {
  const e = only(loadConfigText(VALID.replace('    upstream: orders\n', ''), FILE, {}))
  assert.equal(e.path, '/routes/0/upstream')
  assert.equal(e.message, 'missing required field "upstream"')
  assert.equal(e.line, 12)
})

test('format and type errors are said in words', () => {
  const errors = errorsOf(
    loadConfigText(VALID.replace('discoveryUrl: https://idp.example.com/.well-known/openid-configuration', 'discoveryUrl: not a url').replace('port: 0', 'port: eighty'), FILE, {}),
  )
  assert.deepEqual(
    errors.map((e) => [e.path, e.message]),
    [
      ['/listeners/0/port', 'must be an integer'],
      ['/issuers/0/discoveryUrl', 'must be an http:// or https:// URL without credentials (user:password@)'],
    ],
  )
})

test('every schema error is reported at once, sorted by line, without duplicates', () => {
  const text = VALID.replace('version: 1', 'version: 2').replace('auth: required', 'auth: nope').replace('port: 0', 'port: 0\n    extra: 1')
  const errors = errorsOf(loadConfigText(text, FILE, {}))
  assert.deepEqual(
    errors.map((e) => e.path),
    ['/version', '/listeners/0/extra', '/routes/0/auth'],
  )
  const lines = errors.map((e) => e.line!)
  assert.deepEqual(lines, [...lines].sort((a, b) => a - b))
  assert.equal(errors[0].message, 'must be 1')
})

test('an empty document asks for an object at line 1', () => {
  const e = only(loadConfigText('', FILE, {}))
  assert.equal(e.line, 1)
  assert.match(e.message, /must be an object/)
})

test('YAML syntax errors and repeated keys are reported with their position and without echoing the source line', () => {
  const e = only(loadConfigText(VALID.replace('    auth: required', '    auth: required\n    auth: public'), FILE, {}))
  assert.equal(e.line, 15)
  assert.match(e.message, /^YAML syntax: Map keys must be unique$/)
})

test('a YAML syntax error names the field it lies in; a value the parser takes for a key is never part of the path', () => {
  assert.equal(only(loadConfigText(VALID.replace('    auth: required', '    auth: required\n    auth: public'), FILE, {})).path, '/routes/0/auth')
  // An unclosed quote swallows the rest of the file: the field is where the quote opened.
  const unclosed = errorsOf(loadConfigText(VALID.replace('    url: http://127.0.0.1:3000', '    url: "http://127.0.0.1:3000'), FILE, {}))
  assert.ok(unclosed.length > 0)
  for (const e of unclosed) assert.equal(e.path, '/upstreams/0/url', formatIssues(unclosed))
  // A compact mapping inside a value: the parser sees "s3cr3t-part" as a key; the path stops before it.
  const nested = errorsOf(loadConfigText(VALID.replace('    auth: required', '    auth: s3cr3t-part: x'), FILE, {}))
  assert.ok(nested.length > 0)
  for (const e of nested) {
    assert.equal(e.path, '/routes/0/auth', formatIssues(nested))
    assert.doesNotMatch(formatIssues([e]), /s3cr3t/)
  }
})

test('cross-references, ids, issuer sources and route rules are checked after the schema, each at its line', () => {
  const text = `version: 1
listeners:
  - port: 0
server:
  trustedProxies: [10.0.0.0/8, 10.0.0.0/33, fe80::/64, 2001:db8::1, garbage]
issuers:
  - id: main
    issuer: https://idp.example.com/
    audiences: [a]
  - id: main
    discoveryUrl: https://idp2.example.com/.well-known/openid-configuration
    audiences: [a]
upstreams:
  - id: app
    url: http://127.0.0.1:1
routes:
  - path: /a
    upstream: ap
    auth: required
    issuers: [main, ghost]
  - path: /readyz
    upstream: app
    auth: public
  - path: /**/x
    upstream: app
    auth: public
  - path: /p
    upstream: app
    auth: public
    scopes: { allOf: [read] }
  - path: /a
    methods: [GET]
    upstream: app
    auth: public
`
  const errors = errorsOf(loadConfigText(text, FILE, {}))
  assert.deepEqual(
    errors.map((e) => [e.line, e.path]),
    [
      [5, '/server/trustedProxies/1'],
      [5, '/server/trustedProxies/4'],
      [7, '/issuers/0'],
      [10, '/issuers/1/id'],
      [18, '/routes/0/upstream'],
      [20, '/routes/0/issuers/1'],
      [21, '/routes/1/path'],
      [24, '/routes/2/path'],
      [30, '/routes/3/scopes'],
      [31, '/routes/4/path'],
    ],
    formatIssues(errors),
  )
  const by = (p: string) => errors.find((e) => e.path === p)!.message
  assert.match(by('/routes/0/upstream'), /unknown upstream "ap" \(defined: app\)/)
  assert.match(by('/routes/0/issuers/1'), /unknown issuer "ghost"/)
  assert.match(by('/issuers/0'), /"discoveryUrl" or both "issuer" and "jwksUri"/)
  assert.match(by('/issuers/1/id'), /duplicate issuer id "main"/)
  assert.match(by('/routes/1/path'), /readyPath/)
  assert.match(by('/routes/2/path'), /"\*\*" is only allowed as the last segment/)
  assert.match(by('/routes/4/path'), /already handled by \/routes\/0/)
})

test('an explicit route id may not take the name of a route without an id (route-<index>)', () => {
  const second = `  - id: route-0
    path: /other
    upstream: orders
    auth: required
`
  const e = only(loadConfigText(VALID + second, FILE, {}))
  assert.equal(e.path, '/routes/1/id')
  assert.match(e.message, /duplicate route id "route-0" \(first used at \/routes\/0/)
  const first = VALID.replace('  - path: /orders/:id', '  - id: route-1\n    path: /orders/:id')
  const e2 = only(loadConfigText(first + `  - path: /other\n    upstream: orders\n    auth: required\n`, FILE, {}))
  assert.equal(e2.path, '/routes/1')
  assert.match(e2.message, /no id, so it is named "route-1", which \/routes\/0 already uses/)
})

test('a route listing HEAD after a GET route on the same path is dead for HEAD; GET after HEAD is not', () => {
  const headAfterGet = `  - path: /orders/:id
    methods: [HEAD]
    upstream: orders
    auth: public
`
  const e = only(loadConfigText(VALID + headAfterGet, FILE, {}))
  assert.equal(e.path, '/routes/1/path')
  assert.match(e.message, /HEAD on this path is already handled by \/routes\/0/)
  const getAfterHead = VALID.replace('    auth: required\n', '    methods: [HEAD]\n    auth: required\n') + `  - path: /orders/:id
    methods: [GET]
    upstream: orders
    auth: required
`
  const r = loadConfigText(getAfterHead, FILE, {})
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
})

test('a required route without any issuer configured is refused', () => {
  const text = VALID.replace(/issuers:\n(  .*\n)+?upstreams:/, 'upstreams:')
  const e = only(loadConfigText(text, FILE, {}))
  assert.equal(e.path, '/routes/0/auth')
  assert.match(e.message, /no issuers are configured/)
})

test('an HMAC algorithm without a sharedSecret is a plain error', () => {
  const text = VALID.replace('    audiences: [api://orders]', '    audiences: [api://orders]\n    algorithms: [HS256]')
  const errors = errorsOf(loadConfigText(text + 'security:\n  acknowledge:\n    - { rule: hmac-algorithm, reason: legacy }\n', FILE, {}))
  assert.deepEqual(
    errors.map((e) => [e.path, e.rule]),
    [['/issuers/0/algorithms', undefined]],
  )
  assert.match(errors[0].message, /needs "sharedSecret"/)
})

test('env references are resolved before validation, so a referenced URL is checked as a URL', () => {
  const text = VALID.replace('url: http://127.0.0.1:3000', 'url: ${env:UPSTREAM_URL}')
  const r = loadConfigText(text, FILE, { UPSTREAM_URL: 'http://127.0.0.1:9999' })
  assert.ok(r.ok)
  assert.equal(r.config.upstreams[0].url, 'http://127.0.0.1:9999')
  const bad = only(loadConfigText(text, FILE, { UPSTREAM_URL: 'ftp://x' }))
  assert.equal(bad.path, '/upstreams/0/url')
  assert.equal(bad.line, 10)
})

test('a missing variable names the variable and the path, once, without a second schema error for the same value', () => {
  const text = VALID.replace('url: http://127.0.0.1:3000', 'url: ${env:UPSTREAM_URL}')
  const e = only(loadConfigText(text, FILE, {}))
  assert.equal(e.path, '/upstreams/0/url')
  assert.equal(e.line, 10)
  assert.match(e.message, /environment variable UPSTREAM_URL is not set/)
})

test('a resolved value never appears in any error or warning, even when the value is what is wrong', () => {
  const secret = 'S3cr3t-' + Math.random().toString(36).slice(2)
  const text = VALID.replace('upstream: orders\n', 'upstream: ${env:SECRET}\n')
    .replace('  - port: 0', '  - port: 0\nserver:\n  trustedProxies: ["${env:SECRET}"]')
    .replace('url: http://127.0.0.1:3000', 'url: http://${env:SECRET}.example:3000')
  const r = loadConfigText(text, FILE, { SECRET: secret })
  const errors = errorsOf(r)
  assert.ok(errors.length >= 2, formatIssues(errors))
  const out = formatIssues(errors) + formatIssues(r.warnings ?? []) + JSON.stringify(r)
  assert.ok(!out.includes(secret), out)
})

test('an inline sharedSecret is flagged, a referenced one is not, and neither is ever printed', () => {
  const secret = 'x'.repeat(20) + Math.random().toString(36).slice(2) + 'y'.repeat(10)
  const hmac = (value: string) =>
    VALID.replace('    audiences: [api://orders]', `    audiences: [api://orders]\n    algorithms: [HS256]\n    sharedSecret: ${value}`) +
    'security:\n  acknowledge:\n    - { rule: hmac-algorithm, target: main, reason: legacy }\n'
  const inline = loadConfigText(hmac(secret), FILE, {})
  const e = only(inline)
  assert.deepEqual([e.rule, e.path, e.line], ['hmac-secret-inline', '/issuers/0/sharedSecret', 9])
  assert.ok(!formatIssues(errorsOf(inline)).includes(secret))
  const ref = loadConfigText(hmac('${env:HMAC}'), FILE, { HMAC: secret })
  assert.ok(ref.ok, ref.ok ? '' : formatIssues(ref.errors))
  assert.equal(ref.config.issuers[0].sharedSecret, secret)
  assert.deepEqual(
    ref.warnings.map((w) => w.rule),
    ['hmac-algorithm'],
  )
  assert.ok(!formatIssues(ref.warnings, 'warning').includes(secret))
})

test('loadConfigFile reads ${file:} references relative to the config file and reports an unreadable config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-load-'))
  writeFileSync(join(dir, 'upstream.txt'), 'http://127.0.0.1:4000\n')
  writeFileSync(join(dir, 'c.yaml'), VALID.replace('url: http://127.0.0.1:3000', 'url: ${file:upstream.txt}'))
  const r = await loadConfigFile(join(dir, 'c.yaml'), {})
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  assert.equal(r.config.upstreams[0].url, 'http://127.0.0.1:4000')
  const missing = only(await loadConfigFile(join(dir, 'nope.yaml'), {}))
  assert.match(missing.message, /cannot read config file: no such file/)
})

test('formatIssues prints file:line:col, the path, the message and the rule', () => {
  const text = formatIssues([{ file: 'c.yaml', line: 3, column: 7, path: '/a', message: 'bad', rule: 'r' }, { file: 'c.yaml', line: undefined, column: undefined, path: '', message: 'gone' }], 'warning')
  assert.equal(text, 'warning: c.yaml:3:7  /a  bad  [r]\nwarning: c.yaml  /  gone')
})

test('an issuer that only uses HMAC needs an issuer but no jwksUri', () => {
  const text = VALID.replace(
    '    discoveryUrl: https://idp.example.com/.well-known/openid-configuration\n',
    '    issuer: https://legacy.example.com/\n    algorithms: [HS256]\n    sharedSecret: ${env:K}\n',
  )
  const r = loadConfigText(text + 'security:\n  acknowledge:\n    - { rule: hmac-algorithm, reason: legacy }\n', FILE, { K: 'k'.repeat(32) })
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  const mixed = only(loadConfigText(text.replace('[HS256]', '[HS256, RS256]') + 'security:\n  acknowledge:\n    - { rule: hmac-algorithm, reason: legacy }\n', FILE, { K: 'k'.repeat(32) }))
  assert.match(mixed.message, /missing "jwksUri"/)
})

test('a union of different types is described by its branches, and an empty value is located at its key', () => {
  const errors = errorsOf(loadConfigText(VALID.replace('    auth: required', '    auth:') + 'logging:\n  access: 3\n', FILE, {}))
  assert.deepEqual(
    errors.map((e) => [e.line, e.column, e.path, e.message]),
    [
      [14, 5, '/routes/0/auth', 'must be one of: required, public, certificate'],
      [16, 11, '/logging/access', 'must be false or a string'],
    ],
  )
})

test('two issuers with the same iss, or a JWKS min cache age above the max, are refused at load', () => {
  const twin = VALID.replace(
    `issuers:
  - id: main
    discoveryUrl: https://idp.example.com/.well-known/openid-configuration
    audiences: [api://orders]`,
    `issuers:
  - id: a
    issuer: https://idp.example.com/
    jwksUri: https://idp.example.com/jwks
    audiences: [api://orders]
  - id: b
    issuer: https://idp.example.com/
    jwksUri: https://idp.example.com/other-jwks
    audiences: [api://orders]
    jwksCacheMinAgeSec: 900
    jwksCacheMaxAgeSec: 600`,
  )
  const errors = errorsOf(loadConfigText(twin, FILE, {}))
  const paths = errors.map((e) => e.path).sort()
  assert.deepEqual(paths, ['/issuers/1/issuer', '/issuers/1/jwksCacheMinAgeSec'], formatIssues(errors))
  assert.ok(errors.every((e) => e.line !== undefined))
})

test('a route on a path the gateway answers itself (health, ready, internal-token JWKS) is refused', () => {
  const routes = ['/healthz', '/.well-known/portcullis-jwks.json'].map((path) => `  - path: ${path}\n    upstream: orders\n    auth: public\n`).join('')
  const text = `${VALID}${routes}internalTokens:\n  issuer: https://gateway.example\n  jwksPath: /.well-known/portcullis-jwks.json\n  signingKeys: '{"keys":[]}'\n`
  const errors = errorsOf(loadConfigText(text, FILE, {}))
  const by = (p: string) => errors.find((e) => e.path === p)?.message ?? formatIssues(errors)
  assert.match(by('/routes/1/path'), /collides with server\.healthPath/)
  assert.match(by('/routes/2/path'), /collides with internalTokens\.jwksPath "\/\.well-known\/portcullis-jwks\.json"/)
})

test('a discovery or JWKS URL with credentials is refused without printing them; a query is fine', () => {
  const password = 'pw-' + Math.random().toString(36).slice(2)
  const jwks = VALID.replace(
    '    discoveryUrl: https://idp.example.com/.well-known/openid-configuration\n',
    '    issuer: https://idp.example.com/\n    jwksUri: ${env:IDP_JWKS_URL}\n',
  )
  const r = loadConfigText(jwks, FILE, { IDP_JWKS_URL: `https://gateway:${password}@idp.example.com/jwks` })
  const e = only(r)
  assert.deepEqual([e.line, e.path, e.message], [7, '/issuers/0/jwksUri', 'must be an http:// or https:// URL without credentials (user:password@)'])
  assert.ok(!(formatIssues(errorsOf(r)) + JSON.stringify(r)).includes(password))

  const discovery = loadConfigText(VALID.replace('discoveryUrl: https://', `discoveryUrl: https://user:${password}@`), FILE, {})
  assert.equal(only(discovery).path, '/issuers/0/discoveryUrl')
  assert.ok(!JSON.stringify(discovery).includes(password))

  const query = loadConfigText(VALID.replace('openid-configuration', 'openid-configuration?p=b2c_1_signin\n    issuer: https://idp.example.com/'), FILE, {})
  assert.ok(query.ok, query.ok ? '' : formatIssues(query.errors))
})

test('an internal-token issuer with credentials is refused: it would be written into every minted token', () => {
  const keys = serializeKeySet(newKeySet('EdDSA', Date.now()))
  const text = (issuer: string) => `${VALID}internalTokens:\n  issuer: ${issuer}\n  signingKeys: \${env:KEYS}\n`
  const ok = loadConfigText(text('https://gateway.example'), FILE, { KEYS: keys })
  assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.errors))
  const e = only(loadConfigText(text('https://gw:hunter2@gateway.example'), FILE, { KEYS: keys }))
  assert.deepEqual([e.line, e.path], [16, '/internalTokens/issuer'])
  assert.match(e.message, /must not contain credentials/)
  assert.ok(!e.message.includes('hunter2'))
})

test('a tier name outside the id pattern is refused at its key, and its fields are no longer unchecked', () => {
  const text = `${VALID}limits:
  policies:
    - id: plans
      key: [client]
      rate: { limit: 10, periodSec: 1 }
      tiers:
        claim: plan
        values:
          "free tier": { rate: { limitt: 1, periodSec: "x" }, nonsense: true }
          pro: { rate: { limit: 100, periodSec: 1 } }
`
  const e = only(loadConfigText(text, FILE, {}))
  assert.deepEqual(
    [e.line, e.column, e.path, e.message],
    [23, 11, '/limits/policies/0/tiers/values/free tier', 'invalid name "free tier": may contain only letters, digits, "_", "." and "-"'],
  )
})

test('a header timeout longer than the request timeout is refused, at the field that was changed', () => {
  const lowered = only(loadConfigText(VALID.replace('  - port: 0\n', '  - port: 0\nserver:\n  requestTimeoutMs: 5000\n'), FILE, {}))
  assert.deepEqual([lowered.line, lowered.path], [5, '/server/requestTimeoutMs'])
  assert.match(lowered.message, /^server\.headersTimeoutMs \(10000\) must not be longer than server\.requestTimeoutMs \(5000\)/)
  const raised = only(loadConfigText(VALID.replace('  - port: 0\n', '  - port: 0\nserver:\n  headersTimeoutMs: 40000\n'), FILE, {}))
  assert.deepEqual([raised.line, raised.path], [5, '/server/headersTimeoutMs'])
  assert.match(raised.message, /server\.headersTimeoutMs \(40000\) must not be longer than server\.requestTimeoutMs \(30000\)/)
  const equal = loadConfigText(VALID.replace('  - port: 0\n', '  - port: 0\nserver:\n  headersTimeoutMs: 5000\n  requestTimeoutMs: 5000\n'), FILE, {})
  assert.ok(equal.ok, equal.ok ? '' : formatIssues(equal.errors))
})

test('a "__proto__" key is refused at its line; its fields count for nothing and a secret in it is never printed', () => {
  const secret = 'S3cr3t-' + Math.random().toString(36).slice(2)
  const text = VALID.replace('    upstream: orders\n    auth: required\n', '    auth: public\n    __proto__: { upstream: "${env:SOME_SECRET}" }\n') +
    '  - path: /b\n    upstream: orders\n    __proto__: { auth: public }\n'
  const r = loadConfigText(text, FILE, { SOME_SECRET: secret })
  assert.equal(r.ok, false)
  assert.deepEqual(
    (r.ok ? [] : r.errors).map((e) => [e.line, e.column, e.path, e.message]),
    [
      [12, 5, '/routes/0/upstream', 'missing required field "upstream"'],
      [14, 5, '/routes/0/__proto__', 'a field named "__proto__" is not allowed'],
      [15, 5, '/routes/1/auth', 'missing required field "auth"'],
      [17, 5, '/routes/1/__proto__', 'a field named "__proto__" is not allowed'],
    ],
  )
  assert.ok(!JSON.stringify(r).includes(secret))
  const json = loadConfigText(JSON.stringify({ version: 1, listeners: [{ port: 0 }], upstreams: [{ id: 'a', url: 'http://127.0.0.1:1' }], routes: [{ path: '/b', upstream: 'a' }] }).replace('"upstream":"a"', '"upstream":"a","__proto__":{"auth":"public"}'), 'c.json', {})
  assert.deepEqual(
    (json.ok ? [] : json.errors).map((e) => e.path),
    ['/routes/0/auth', '/routes/0/__proto__'],
  )
})

test('a discoveryUrl the issuer cannot be derived from needs "issuer", as start would otherwise refuse it', () => {
  const b2c = 'https://tenant.b2clogin.com/tenant.onmicrosoft.com/v2.0/.well-known/openid-configuration?p=b2c_1_signin'
  const e = only(loadConfigText(VALID.replace('https://idp.example.com/.well-known/openid-configuration', b2c), FILE, {}))
  assert.deepEqual([e.line, e.path], [6, '/issuers/0/discoveryUrl'])
  assert.match(e.message, /the issuer cannot be derived from this discoveryUrl.*; set "issuer"$/)
  const withIssuer = loadConfigText(VALID.replace('https://idp.example.com/.well-known/openid-configuration', `${b2c}\n    issuer: https://tenant.b2clogin.com/tid/v2.0/`), FILE, {})
  assert.ok(withIssuer.ok, withIssuer.ok ? '' : formatIssues(withIssuer.errors))
  const rfc8414 = loadConfigText(VALID.replace('https://idp.example.com/.well-known/openid-configuration', 'https://idp.example.com/.well-known/oauth-authorization-server/tenant1'), FILE, {})
  assert.ok(rfc8414.ok, rfc8414.ok ? '' : formatIssues(rfc8414.errors))
})

test('two listeners, or the metrics listener, on one port are refused at the second one (a wildcard host takes every interface)', () => {
  const twice = only(loadConfigText(VALID.replace('  - port: 0\n', '  - port: 8080\n  - port: 8080\n'), FILE, {}))
  assert.equal(twice.path, '/listeners/1/port')
  assert.match(twice.message, /127\.0\.0\.1:8080 is also used by \/listeners\/0/)
  // (0.0.0.0 is also a lint finding, plain HTTP on the network: only the port clash matters here.)
  const wildcard = errorsOf(loadConfigText(VALID.replace('  - port: 0\n', '  - { host: 0.0.0.0, port: 8080 }\n  - { host: 127.0.0.1, port: 8080 }\n'), FILE, {}))
  assert.deepEqual(
    wildcard.filter((e) => e.path.endsWith('/port')).map((e) => e.path),
    ['/listeners/1/port'],
  )
  const metrics = only(loadConfigText(VALID.replace('  - port: 0\n', '  - port: 9464\nmetrics:\n  enabled: true\n'), FILE, {}))
  assert.equal(metrics.path, '/metrics/port')
  assert.equal(loadConfigText(VALID.replace('  - port: 0\n', '  - port: 0\n  - port: 0\n  - { host: 127.0.0.2, port: 8080 }\n  - port: 8080\n  - { host: "::1", port: 8080 }\n'), FILE, {}).ok, true, 'port 0, and one port on specific hosts, are fine')
  // 0.0.0.0 takes every IPv4 interface only; "::" takes both families.
  const mixed = errorsOf(loadConfigText(VALID.replace('  - port: 0\n', '  - { host: 0.0.0.0, port: 8080 }\n  - { host: "::1", port: 8080 }\n  - { host: "::", port: 8081 }\n  - { host: 127.0.0.1, port: 8081 }\n'), FILE, {}))
  assert.deepEqual(
    mixed.filter((e) => e.path.endsWith('/port')).map((e) => e.path),
    ['/listeners/3/port'],
  )
})

test('a websocket route must accept GET, the method of every WebSocket handshake', () => {
  const noGet = loadConfigText(VALID.replace('    auth: required\n', '    auth: required\n    methods: [POST]\n    websocket: true\n'), FILE, {})
  const issue = only(noGet)
  assert.equal(issue.path, '/routes/0/websocket')
  assert.match(issue.message, /needs GET/)
  assert.equal(issue.line, 16)
  const ok = loadConfigText(VALID.replace('    auth: required\n', '    auth: required\n    websocket: true\n'), FILE, {})
  assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.errors))
  assert.equal(ok.config.routes[0].websocket, true)
  const tokenProtocol = loadConfigText(VALID.replace('    auth: required\n', '    auth: required\n    websocketTokenProtocol: true\n'), FILE, {})
  assert.match(only(tokenProtocol).message, /needs websocket: true and auth: required/)
  assert.equal(only(tokenProtocol).path, '/routes/0/websocketTokenProtocol')
})

test('a health check probes a path or a gRPC service, one of them; the gRPC one needs an HTTP/2 upstream', () => {
  const withCheck = (check: string, http2 = true) =>
    loadConfigText(VALID.replace('    url: http://127.0.0.1:3000\n', `    url: http://127.0.0.1:3000\n${http2 ? '    http2: true\n' : ''}    healthCheck: ${check}\n`), FILE, {})
  const neither = withCheck('{ intervalMs: 1000 }')
  assert.ok(!neither.ok)
  assert.ok(neither.errors.some((e) => e.path === '/upstreams/0/healthCheck' && /one of them/.test(e.message)), formatIssues(neither.errors))
  const both = withCheck('{ path: /healthz, grpcService: "" }')
  assert.ok(!both.ok && both.errors.some((e) => e.path === '/upstreams/0/healthCheck'))
  const plain = withCheck('{ grpcService: catalog.Catalog }', false)
  assert.ok(!plain.ok && plain.errors.some((e) => e.path === '/upstreams/0/healthCheck/grpcService' && /http2: true/.test(e.message)), plain.ok ? '' : formatIssues(plain.errors))
  for (const ok of [withCheck('{ grpcService: "" }'), withCheck('{ grpcService: catalog.Catalog }'), withCheck('{ path: /healthz }', false)]) assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.errors))
})

test('h2c is for plain listeners; a TLS listener offers HTTP/2 with tls.http2', () => {
  const tls = loadConfigText(VALID.replace('listeners:\n  - port: 0\n', 'listeners:\n  - port: 0\n    h2c: true\n    tls: { cert: x, key: y }\n'), FILE, {})
  assert.ok(!tls.ok)
  assert.ok(tls.errors.some((e) => e.path === '/listeners/0/h2c' && /tls\.http2/.test(e.message)), formatIssues(tls.errors))
  // (Acknowledged: on a Node.js whose nghttp2 predates 1.68.1 an HTTP/2 listener is a lint error, lint.test.ts.)
  const acknowledged = 'security:\n  acknowledge:\n    - rule: listener-http2-vulnerable\n      reason: a test of the listener fields\n'
  const plain = loadConfigText(VALID.replace('listeners:\n  - port: 0\n', 'listeners:\n  - port: 0\n    h2c: true\n') + acknowledged, FILE, {})
  assert.ok(plain.ok, plain.ok ? '' : formatIssues(plain.errors))
  assert.equal(plain.config.listeners[0].h2c, true)
})

test('a websocket route cannot use an upstream reached over HTTP/2 (undici tunnels over HTTP/1.1 only)', () => {
  const text = VALID.replace('    auth: required\n', '    auth: required\n    websocket: true\n').replace('    url: http://127.0.0.1:3000\n', '    url: http://127.0.0.1:3000\n    http2: true\n')
  assert.notEqual(text, VALID)
  const issue = only(loadConfigText(text, FILE, {}))
  assert.equal(issue.path, '/routes/0/websocket')
  assert.match(issue.message, /reached over HTTP\/1\.1.*http2: true/)
  const plain = loadConfigText(VALID.replace('    url: http://127.0.0.1:3000\n', '    url: http://127.0.0.1:3000\n    http2: true\n'), FILE, {})
  assert.ok(plain.ok, plain.ok ? '' : formatIssues(plain.errors))
  assert.equal(plain.config.upstreams[0].http2, true)
})

test('CORS origins must be written as browsers send them, and "*" cannot go with credentials', () => {
  const withCors = (cors: string) => loadConfigText(VALID.replace('    auth: required\n', `    auth: required\n    cors: ${cors}\n`), FILE, {})
  const ok = withCors('{ allowOrigins: [https://app.example.com, "http://localhost:5173"] }')
  assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.errors))
  assert.deepEqual(ok.config.routes[0].cors?.allowHeaders, ['authorization', 'content-type'])
  for (const [bad, why] of [
    ['https://app.example.com/', /no path or trailing slash/],
    ['https://App.example.com', /lower case/],
    ['https://app.example.com:443', /no default port/],
    ['null', /is not an origin/],
    ['ftp://files.example.com', /not an http or https origin/],
  ] as const) {
    const issue = only(withCors(`{ allowOrigins: ["${bad}"] }`))
    assert.equal(issue.path, '/routes/0/cors/allowOrigins/0', bad)
    assert.match(issue.message, why, bad)
  }
  const star = only(withCors('{ allowOrigins: ["*"], allowCredentials: true }'))
  assert.equal(star.path, '/routes/0/cors/allowCredentials')
  assert.ok(withCors('{ allowOrigins: ["*"] }').ok)
})

test('a gRPC-Web route needs an upstream reached over HTTP/2 (gRPC) and POST among its methods', () => {
  const route = (methods: string, http2: boolean) =>
    loadConfigText(
      VALID.replace('    auth: required\n', `    auth: required\n    methods: ${methods}\n    grpcWeb: true\n`).replace('    url: http://127.0.0.1:3000\n', `    url: http://127.0.0.1:3000\n${http2 ? '    http2: true\n' : ''}`),
      FILE,
      {},
    )
  const overHttp1 = only(route('[POST]', false))
  assert.equal(overHttp1.path, '/routes/0/grpcWeb')
  assert.match(overHttp1.message, /http2: true/)
  const noPost = only(route('[GET]', true))
  assert.equal(noPost.path, '/routes/0/grpcWeb')
  assert.match(noPost.message, /needs POST/)
  const ok = route('[POST]', true)
  assert.ok(ok.ok, ok.ok ? '' : formatIssues(ok.errors))
  assert.equal(ok.config.routes[0].grpcWeb, true)
})

test('routes compete within a host group: the same path may have a route per host, not two in one group', () => {
  const perHost = `  - path: /orders/:id
    hosts: [api.example.com, "*.eu.example.com"]
    upstream: orders
    auth: public
  - path: /orders/:id
    hosts: [admin.example.com]
    upstream: orders
    auth: required
`
  const r = loadConfigText(VALID + perHost, FILE, {})
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  assert.deepEqual(r.config.routes[1].hosts, ['api.example.com', '*.eu.example.com'])

  const twice = `  - path: /orders/:id
    hosts: [Api.Example.com]
    upstream: orders
    auth: public
  - path: /orders/:id
    hosts: [admin.example.com, api.example.com.]
    upstream: orders
    auth: public
`
  const e = only(loadConfigText(VALID + twice, FILE, {}))
  assert.equal(e.path, '/routes/2/path')
  assert.match(e.message, /GET on this path for host "api\.example\.com" is already handled by \/routes\/1; this route would never match/)
})

test('a hosts entry must be a host name, a wildcard or an IP address, listed once', () => {
  const text = (hosts: string) => VALID.replace('    upstream: orders\n', `    hosts: ${hosts}\n    upstream: orders\n`)
  for (const bad of ['["api.example.com:8443"]', '["https://api.example.com"]', '["*"]', '["a.*.example.com"]', '["-a.example.com"]', '["api..example.com"]', '[""]']) {
    const e = only(loadConfigText(text(bad), FILE, {}))
    assert.equal(e.path, '/routes/0/hosts/0', bad)
    assert.match(e.message, /must be a host name \("api\.example\.com"\), a wildcard \("\*\.example\.com"\) or an IP address, without a port/, bad)
  }
  for (const good of ['[api.example.com]', '["*.example.com"]', '[127.0.0.1]', '["[::1]"]', '[localhost, API.example.com.]']) {
    const r = loadConfigText(text(good), FILE, {})
    assert.ok(r.ok, `${good}: ${r.ok ? '' : formatIssues(r.errors)}`)
  }
  const e = only(loadConfigText(text('[api.example.com, API.example.com.]'), FILE, {}))
  assert.equal(e.path, '/routes/0/hosts/1')
  assert.match(e.message, /"API\.example\.com\." is listed already \(at \/routes\/0\/hosts\/0/)
  assert.equal(only(loadConfigText(text('[]'), FILE, {})).path, '/routes/0/hosts')
})
