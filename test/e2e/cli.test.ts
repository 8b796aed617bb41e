import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLI, startGateway, writeConfig } from '../helpers/gateway.js'
import { startKeyServer } from '../helpers/keys.js'

/**
 * The built `portcullis` CLI as a user runs it: exit codes, what lands on stdout and stderr, and
 * that a refused config never gets as far as listening.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const FIXTURES = join(ROOT, 'test', 'fixtures', 'configs')

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI to completion in the fixtures folder (so file names print as given). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: FIXTURES, env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

const secretValue = () => `sekret-${randomBytes(24).toString('hex')}`

test('--help prints the commands and --version the package version, both with exit code 0', async () => {
  const help = await cli(['--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: portcullis <command>/)
  for (const name of ['start', 'check-config', 'schema']) assert.match(help.stdout, new RegExp(`^  ${name} +\\S`, 'm'))
  const version = await cli(['--version'])
  assert.equal(version.code, 0)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  assert.equal(version.stdout.trim(), pkg.version)
  const startHelp = await cli(['start', '--help'])
  assert.equal(startHelp.code, 0)
  assert.match(startHelp.stdout, /--config FILE/)
})

test('an unknown command prints the usage on stderr and exits 2', async () => {
  const r = await cli(['serve'])
  assert.equal(r.code, 2)
  assert.equal(r.stdout, '')
  assert.match(r.stderr, /unknown command "serve"[\s\S]*Usage: portcullis <command>/)
})

test('check-config accepts the valid YAML and JSON fixtures with exit code 0', async () => {
  for (const f of ['valid.yaml', 'valid.json']) {
    const r = await cli(['check-config', f])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^${f.replace('.', '\\.')}: OK \\(`))
    assert.equal(r.stderr, '')
  }
})

test('check-config reports every schema error with file:line:column, the JSON path and what is expected', async () => {
  const r = await cli(['check-config', 'broken-schema.yaml'])
  assert.equal(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines[0], 'broken-schema.yaml: 6 errors')
  assert.equal(lines[1], 'broken-schema.yaml:4:11  /listeners/0/port  must be <= 65535')
  assert.match(lines[2], /^broken-schema\.yaml:7:10  \/upstreams\/0\/url  must be an http:\/\/ or https:\/\/ URL/)
  assert.equal(
    lines[3],
    'broken-schema.yaml:12:25  /issuers/0/algorithms/1  must be one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512, none',
  )
  assert.match(lines[4], /^broken-schema\.yaml:13:5  \/issuers\/0\/audience  unknown field "audience", did you mean "audiences"\? \(allowed: id, /)
  assert.equal(lines[5], 'broken-schema.yaml:17:11  /routes/0/auth  must be one of: required, public, certificate')
  assert.equal(lines[6], 'broken-schema.yaml:18:5  /routes/1/upstream  missing required field "upstream"')
})

test('check-config reports cross-reference and pattern errors at the line of the field', async () => {
  const r = await cli(['check-config', 'broken-semantic.yaml'])
  assert.equal(r.code, 1)
  const expected = [
    ['5:32', '/server/trustedProxies/1', /not an IP address or a CIDR/],
    ['7:5', '/issuers/0', /missing "jwksUri"/],
    ['13:9', '/upstreams/1/id', /duplicate upstream id "orders"/],
    ['17:15', '/routes/0/upstream', /unknown upstream "ordrs" \(defined: orders\)/],
    ['19:21', '/routes/0/issuers/1', /unknown issuer "other"/],
    ['20:11', '/routes/1/path', /collides with server\.healthPath/],
    ['23:11', '/routes/2/path', /"\*\*" is only allowed as the last segment/],
    ['29:13', '/routes/3/scopes', /auth: required/],
  ] as const
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines[0], `broken-semantic.yaml: ${expected.length} errors`)
  expected.forEach(([pos, path, message], i) => {
    const line = lines[i + 1]
    assert.ok(line.startsWith(`broken-semantic.yaml:${pos}  ${path}  `), `${line} ≠ ${pos} ${path}`)
    assert.match(line, message)
  })
})

test('check-config reports a YAML syntax error with its position', async () => {
  const r = await cli(['check-config', 'broken-syntax.yaml'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^broken-syntax\.yaml:5:1  \/  YAML syntax: /m)
})

test('check-config reports a YAML alias without an anchor, and an alias bomb, at the alias; an anchor reused 150 times is fine', async () => {
  const unanchored = await cli(['check-config', 'alias-unanchored.yaml'])
  assert.equal(unanchored.code, 1)
  assert.equal(unanchored.stdout, '')
  assert.equal(
    unanchored.stderr,
    'alias-unanchored.yaml: 1 error\nalias-unanchored.yaml:9:15  /routes/0/upstream  YAML alias "*u" has no anchor "&u" before it (an anchor must be defined before its aliases)\n',
  )
  const bomb = await cli(['check-config', 'alias-bomb.yaml'])
  assert.equal(bomb.code, 1)
  assert.match(bomb.stderr, /^alias-bomb\.yaml: 1 error\nalias-bomb\.yaml:\d+:\d+  \/l\d\/\d  YAML aliases expand the document past \d+ values at "\*a\d"/)
  assert.doesNotMatch(bomb.stderr, /\n\s+at /, 'no stack trace')

  let routes = 'version: 1\nlisteners: [{ port: 0 }]\nupstreams: [{ id: app, url: "http://127.0.0.1:1" }]\nroutes:\n'
  for (let i = 0; i < 150; i++) routes += `  - { path: /r${i}, upstream: app, auth: ${i ? '*pub' : '&pub public'} }\n`
  const reused = await cli(['check-config', writeConfig(routes, 'reused.yaml')])
  assert.equal(reused.code, 0, reused.stderr)
})

test('unacknowledged lint findings fail check-config with their rule ids; alg-none fails even when acknowledged', async () => {
  const r = await cli(['check-config', 'lint-unacknowledged.yaml'])
  assert.equal(r.code, 1)
  const rules = [...r.stderr.matchAll(/\[([a-z-]+)\]$/gm)].map((m) => m[1])
  assert.deepEqual(rules, ['listener-public-plain', 'issuer-no-audience', 'clock-skew-large', 'public-route-catch-all'])
  assert.match(r.stderr, /^lint-unacknowledged\.yaml:9:19  \/issuers\/0\/clockSkewSec  .*\[clock-skew-large\]$/m)

  const none = await cli(['check-config', 'alg-none.yaml'])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /^alg-none\.yaml:9:25  \/issuers\/0\/algorithms\/1  .*\[alg-none\]$/m)
  assert.match(none.stderr, /^alg-none\.yaml:19:13  \/security\/acknowledge\/0\/rule  rule "alg-none" cannot be acknowledged/m)
})

test('an acknowledged lint finding passes check-config and is printed as a warning with its reason', async () => {
  const r = await cli(['check-config', 'lint-acknowledged.yaml'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /OK \(.*1 warning\)/)
  assert.match(r.stderr, /^warning: lint-acknowledged\.yaml:6:5  \/issuers\/0\/audiences  .*\[issuer-no-audience\] \(acknowledged: the IdP of this test puts no aud in its tokens\)$/m)
})

test('a ${file:} secret is read relative to the config file, whatever the working directory', async () => {
  const r = await new Promise<Ran>((resolve) => {
    execFile(process.execPath, [CLI, 'check-config', join('test', 'fixtures', 'configs', 'hmac-file.yaml')], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr }),
    )
  })
  assert.equal(r.code, 0, r.stderr)
  const key = readFileSync(join(FIXTURES, 'secrets', 'hmac.key'), 'utf8').trim()
  assert.ok(!r.stdout.includes(key) && !r.stderr.includes(key))
})

test('a missing environment variable is reported by name and path, and the variables that are set are never printed', async () => {
  const secret = secretValue()
  const r = await cli(['check-config', 'hmac-env.yaml'], { PORTCULLIS_TEST_HMAC_SECRET: secret })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^hmac-env\.yaml:14:10  \/upstreams\/0\/url  environment variable PORTCULLIS_TEST_UPSTREAM_URL is not set/m)
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the secret leaked into the output')
})

test('a resolved secret that is itself wrong (too short) is reported without being printed', async () => {
  const secret = `short-${randomBytes(4).toString('hex')}`
  const r = await cli(['check-config', 'hmac-env.yaml'], { PORTCULLIS_TEST_HMAC_SECRET: secret, PORTCULLIS_TEST_UPSTREAM_URL: 'http://127.0.0.1:1' })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^hmac-env\.yaml:11:19  \/issuers\/0\/sharedSecret  sharedSecret is 14 bytes; HS256 needs at least 32  \[hmac-secret-short\]$/m)
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the secret leaked into the output')
  const json = await cli(['check-config', '--json', 'hmac-env.yaml'], { PORTCULLIS_TEST_HMAC_SECRET: secret, PORTCULLIS_TEST_UPSTREAM_URL: 'http://127.0.0.1:1' })
  assert.ok(!json.stdout.includes(secret), 'the secret leaked into the JSON output')
})

test('a JWKS URL with credentials from an environment variable is refused at its line, and the password is never printed', async () => {
  const password = secretValue()
  const file = writeConfig(
    [
      'version: 1',
      'listeners: [{ port: 0 }]',
      'issuers:',
      '  - id: idp',
      '    issuer: https://idp.example.com/',
      '    jwksUri: ${env:IDP_JWKS_URL}',
      '    audiences: [api://x]',
      'upstreams: [{ id: app, url: "http://127.0.0.1:1" }]',
      'routes: [{ path: /api/**, upstream: app, auth: required }]',
      '',
    ].join('\n'),
    'portcullis.yaml',
  )
  const env = { IDP_JWKS_URL: `https://gateway:${password}@idp.example.com/jwks` }
  const r = await cli(['check-config', file], env)
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:6:14  \/issuers\/0\/jwksUri  must be an http:\/\/ or https:\/\/ URL without credentials/)
  const json = await cli(['check-config', '--json', file], env)
  assert.equal(json.code, 1)
  assert.ok(!(r.stdout + r.stderr + json.stdout + json.stderr).includes(password), 'the password leaked into the output')
})

test('check-config refuses a limit tier whose name is outside the id pattern, at its key', async () => {
  const file = writeConfig(
    [
      'version: 1',
      'listeners: [{ port: 0 }]',
      'upstreams: [{ id: app, url: "http://127.0.0.1:1" }]',
      'routes: [{ path: /api/**, upstream: app, auth: public, limits: [plans] }]',
      'limits:',
      '  policies:',
      '    - id: plans',
      '      key: [ip]',
      '      rate: { limit: 10, periodSec: 1 }',
      '      tiers:',
      '        claim: plan',
      '        values:',
      '          "free tier": { rate: { limitt: 1, periodSec: "x" }, nonsense: true }',
      '',
    ].join('\n'),
    'portcullis.yaml',
  )
  const r = await cli(['check-config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:13:11  \/limits\/policies\/0\/tiers\/values\/free tier  invalid name "free tier": may contain only letters, digits/)
})

test('check-config refuses a request timeout shorter than the header timeout, which node would refuse at start', async () => {
  const file = writeConfig(
    'version: 1\nlisteners: [{ port: 0 }]\nserver: { requestTimeoutMs: 5000 }\nupstreams: [{ id: app, url: "http://127.0.0.1:1" }]\nroutes: [{ path: /a, upstream: app, auth: public }]\n',
    'portcullis.yaml',
  )
  const r = await cli(['check-config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:3:29  \/server\/requestTimeoutMs  server\.headersTimeoutMs \(10000\) must not be longer than server\.requestTimeoutMs \(5000\)/)
})

test('check-config refuses an IPv4-mapped trusted-proxy range that holds every IPv4 client, with the lint rule', async () => {
  const file = writeConfig(
    'version: 1\nlisteners: [{ port: 0 }]\nserver:\n  trustedProxies: [10.0.0.0/8, "::ffff:0.0.0.0/96"]\nupstreams: [{ id: app, url: "http://127.0.0.1:1" }]\nroutes: [{ path: /a, upstream: app, auth: public }]\n',
    'portcullis.yaml',
  )
  const r = await cli(['check-config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:4:32  \/server\/trustedProxies\/1  this range contains the IPv4-mapped block .*  \[trusted-proxies-any\]$/m)
})

test('a "__proto__" key is refused at its line and a secret referenced inside it is never printed', async () => {
  const secret = secretValue()
  const file = writeConfig(
    'version: 1\nlisteners: [{ port: 0 }]\nupstreams: [{ id: app, url: "http://127.0.0.1:1" }]\nroutes:\n  - path: /a\n    auth: public\n    __proto__: { upstream: "${env:SOME_SECRET}" }\n',
    'portcullis.yaml',
  )
  const r = await cli(['check-config', file], { SOME_SECRET: secret })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:7:5  \/routes\/0\/__proto__  a field named "__proto__" is not allowed/)
  const json = await cli(['check-config', '--json', file], { SOME_SECRET: secret })
  assert.ok(!(r.stdout + r.stderr + json.stdout + json.stderr).includes(secret), 'the secret leaked into the output')
})

test('check-config refuses a discoveryUrl without "issuer" when the issuer cannot be derived from it, as start does', async () => {
  const file = writeConfig(
    [
      'version: 1',
      'listeners: [{ port: 0 }]',
      'issuers:',
      '  - id: b2c',
      '    discoveryUrl: "https://tenant.b2clogin.com/tenant.onmicrosoft.com/v2.0/.well-known/openid-configuration?p=b2c_1_signin"',
      '    audiences: [api://x]',
      'upstreams: [{ id: app, url: "http://127.0.0.1:1" }]',
      'routes: [{ path: /a, upstream: app, auth: required }]',
      '',
    ].join('\n'),
    'portcullis.yaml',
  )
  const r = await cli(['check-config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /portcullis\.yaml:5:19  \/issuers\/0\/discoveryUrl  the issuer cannot be derived from this discoveryUrl/)
})

test('start with an invalid config exits 1 with the errors on stderr and never listens', async () => {
  const child = spawn(process.execPath, [CLI, 'start', '--config', 'broken-semantic.yaml'], { cwd: FIXTURES, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)))
  clearTimeout(timer)
  assert.equal(code, 1, stderr)
  assert.match(stderr, /broken-semantic\.yaml:17:15  \/routes\/0\/upstream  unknown upstream "ordrs"/)
  assert.match(stderr, /\/routes\/1\/path  collides with server\.healthPath/)
  assert.doesNotMatch(stdout, /"msg":"listening"/)
})

test('start runs with an acknowledged finding, logs it as a warning, and never prints the resolved secret', async (t) => {
  const ks = await startKeyServer({ audience: 'api://test' })
  const secret = secretValue()
  const config = [
    'version: 1',
    'listeners: [{ host: 127.0.0.1, port: 0 }]',
    'logging: { level: trace, events: stdout, access: stdout }',
    'issuers:',
    '  - id: rsa',
    `    issuer: ${ks.issuer}`,
    `    jwksUri: ${ks.jwksUri}`,
    '  - id: legacy',
    '    issuer: https://legacy.example.com/',
    '    audiences: [api://test]',
    '    algorithms: [HS256]',
    '    sharedSecret: ${env:PORTCULLIS_TEST_HMAC_SECRET}',
    'upstreams: [{ id: app, url: "http://127.0.0.1:9" }]',
    'routes: [{ path: /api/**, upstream: app, auth: required }]',
    'security:',
    '  acknowledge:',
    '    - { rule: issuer-no-audience, target: rsa, reason: test IdP }',
    '    - { rule: hmac-algorithm, target: legacy, reason: legacy IdP }',
    '',
  ].join('\n')
  const gw = await startGateway(writeConfig(config, 'portcullis.yaml'), { waitReady: false, env: { PORTCULLIS_TEST_HMAC_SECRET: secret } })
  t.after(() => ks.close())
  const warning = await gw.waitFor((l) => l.rule === 'issuer-no-audience')
  assert.equal(warning.level, 40)
  assert.equal(warning.path, '/issuers/0/audiences')
  await gw.waitFor((l) => l.rule === 'hmac-algorithm')
  // Exercise the issuers once (a token neither can verify), so their code paths log what they log.
  await fetch(`${gw.url}/api/x`, { headers: { authorization: 'Bearer e30.e30.AAAA' } }).catch(() => undefined)
  await gw.stop()
  const everything = JSON.stringify(gw.lines) + gw.stderr()
  assert.ok(!everything.includes(secret), 'the resolved secret appeared in the gateway output')
})
