import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import pino from 'pino'
import fc from 'fast-check'
import { IdentitySchema, type Config } from '../../config/schema.js'
import { isGatewayError } from '../../errors/gateway-error.js'
import { createClientAddressResolver } from '../../http/client-address.js'
import type { Deps, RequestContext } from '../stage.js'
import { createHeaderMatcher } from './header-matcher.js'
import { connectionListed } from './hop-by-hop.js'
import { createSanitizeStage } from './index.js'

/** The configuration's own default, so these tests judge what a user who sets nothing gets. */
const DEFAULT_STRIP = IdentitySchema.properties.stripHeaders.default as string[]
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const OUR_PARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`

function config(overrides: { stripHeaders?: string[]; headers?: Partial<Config['identity']['headers']>; routes?: Array<{ hosts?: string[] }> } = {}): Config {
  return {
    server: { maxBodyBytes: 0 },
    routes: overrides.routes ?? [{}],
    identity: {
      stripHeaders: overrides.stripHeaders ?? DEFAULT_STRIP,
      headers: { subject: 'x-auth-subject', clientId: 'x-auth-client-id', scopes: 'x-auth-scopes', issuer: 'x-auth-issuer', ...overrides.headers },
      forwardAuthorization: true,
    },
  } as unknown as Config
}

const deps: Deps = { now: () => 0, events: { emit() {}, flush: async () => {} }, logger: pino({ level: 'silent' }) }

/** A request as node's parser hands it over: rawHeaders in wire order and case, headers lowercased. */
function request(raw: string[], httpVersion = '1.1'): IncomingMessage {
  // Every HTTP/1.1 request carries a Host (the stage refuses one without); tests that are not
  // about it get one. '-Host' in the list asks for none.
  if (raw[0] === '-Host') raw = raw.slice(1)
  else if (!raw.some((n, i) => i % 2 === 0 && n.toLowerCase() === 'host')) raw = [...raw, 'Host', 'gw.test']
  const headers: Record<string, string | string[]> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase()
    const value = raw[i + 1]
    const prev = headers[name]
    // Like node with joinDuplicateHeaders: false: the first content-length / host wins, others join.
    if (prev === undefined) headers[name] = value
    else if (name !== 'content-length' && name !== 'host' && name !== 'authorization') headers[name] = `${prev as string}, ${value}`
  }
  return { headers, rawHeaders: raw, httpVersion } as unknown as IncomingMessage
}

/** The response of the last run, to see whether the stage asked for the connection to close. */
let lastRes: { shouldKeepAlive: boolean } | undefined

function run(raw: string[], opts: { peer?: string; trusted?: string[]; cfg?: Config; traceparent?: string; traceId?: string; httpVersion?: string } = {}) {
  const stage = createSanitizeStage(opts.cfg ?? config(), deps, createClientAddressResolver(opts.trusted ?? []))
  const ctx = {
    id: 'req-id-0001',
    traceparent: opts.traceparent ?? OUR_PARENT,
    traceId: opts.traceId ?? TRACE_ID,
    req: request(raw, opts.httpVersion),
    peerIp: opts.peer ?? '10.0.0.7',
    upstreamHeaders: {},
    res: { shouldKeepAlive: true },
  } as unknown as RequestContext
  lastRes = ctx.res
  stage.onRequest(ctx)
  return ctx.upstreamHeaders
}

function rejectionReason(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    assert.ok(isGatewayError(err))
    assert.equal(err.code, 'ERR_SANITIZE_REJECTED')
    return err.reason
  }
  assert.fail('expected ERR_SANITIZE_REJECTED')
}

test('hop-by-hop headers are removed and end-to-end headers are kept', () => {
  const out = run([
    'Host', 'gw.example',
    'Connection', 'keep-alive',
    'Keep-Alive', 'timeout=5',
    'Proxy-Connection', 'keep-alive',
    'TE', 'gzip',
    'Trailer', 'x-checksum',
    'Upgrade', 'h2c',
    'Proxy-Authorization', 'Basic cHJveHk6c2VjcmV0',
    'Expect', '100-continue',
    'Accept', 'application/json',
    'Content-Type', 'text/plain',
    'Authorization', 'Bearer abc',
  ])
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'expect', 'host']) {
    assert.equal(out[name], undefined, name)
  }
  assert.equal(out.accept, 'application/json')
  assert.equal(out['content-type'], 'text/plain')
  assert.equal(out.authorization, 'Bearer abc')
})

test('te: trailers survives because it is about the message, not the connection', () => {
  assert.equal(run(['TE', 'trailers'])?.te, 'trailers')
  assert.equal(run(['TE', 'deflate, trailers;q=1'])?.te, 'trailers')
  assert.equal(run(['TE', 'deflate'])?.te, undefined)
})

test('headers named in Connection are removed, but never Content-Length', () => {
  const out = run(['Connection', 'close, X-Secret-Hop, x-other', 'X-Secret-Hop', '1', 'X-Other', '2', 'X-Kept', '3', 'Content-Length', '0'])
  assert.equal(out['x-secret-hop'], undefined)
  assert.equal(out['x-other'], undefined)
  assert.equal(out['x-kept'], '3')
  assert.equal(out['content-length'], '0')
  assert.deepEqual(connectionListed('keep-alive'), undefined)
  assert.deepEqual(connectionListed(' Close , Foo,,content-length, TE'), ['foo'])
})

test('the default list strips the identity headers of common auth proxies, and keeps look-alikes', () => {
  const spoofed = [
    'Remote-Groups', 'Remote-Email', 'X-Remote-Group', 'X-Forwarded-Email', 'X-Forwarded-Groups',
    'X-Forwarded-Access-Token', 'X-WEBAUTH-USER', 'X-authentik-username', 'X-Pomerium-Jwt-Assertion',
    'X-Goog-Authenticated-User-Email', 'X-Goog-IAP-JWT-Assertion', 'X-Amzn-Oidc-Data', 'Cf-Access-Jwt-Assertion',
    'X-Consumer-Username', 'X-Credential-Identifier', 'X-Anonymous-Consumer', 'X-MS-CLIENT-PRINCIPAL-NAME',
    'X-JWT-Assertion', 'X-Access-Token', 'X-ID-Token',
  ]
  const out = run([...spoofed.flatMap((n) => [n, 'admin']), 'Remotely', 'kept', 'X-Consumers', 'kept', 'X-Jwt', 'kept'])
  for (const name of spoofed) assert.equal(out[name.toLowerCase()], undefined, name)
  assert.equal(out.remotely, 'kept')
  assert.equal(out['x-consumers'], 'kept')
  assert.equal(out['x-jwt'], 'kept')
})

test('the header matcher compares a name only with prefixes of its first character, and misses nothing', () => {
  const m = createHeaderMatcher(['x-a*', 'y-b*', 'x-ab*', 'exact', 'x-abc'])
  assert.deepEqual(m.prefixes, ['x-a', 'y-b', 'x-ab'])
  assert.ok(!m.exact.has('x-abc'), 'an exact name under a prefix is dropped as redundant')
  for (const name of ['x-a', 'x-abc', 'x-ab-d', 'y-b', 'y-bz', 'exact']) assert.ok(m.matches(name), name)
  for (const name of ['x-', 'y-a', 'z-a', 'exact2', '', '\u00e9x']) assert.ok(!m.matches(name), name)
})

test('client identity headers are stripped by exact name and by prefix, whatever their case', () => {
  const out = run([
    'X-User-Id', 'admin',
    'x-USER', 'admin',
    'X-Auth-Subject', 'admin',
    'X-AUTH-SCOPES', 'admin:all',
    'X-Forwarded-User', 'admin',
    'X-Scopes', 'admin',
    'X-Client-Id', 'trusted-client',
    'Remote-User', 'admin',
    'X-Portcullis-Verified', 'yes',
    'X-Userland', 'also a prefix match',
    'X-Usr', 'not a match',
  ])
  for (const name of Object.keys(out)) assert.ok(!/^(x-user|x-auth|x-scopes|x-client-id|remote-user|x-portcullis)/.test(name), name)
  assert.equal(out['x-usr'], 'not a match')
})

test('configured identity header names are stripped even when not in stripHeaders', () => {
  const out = run(['X-Verified-Sub', 'admin', 'X-Verified-Iss', 'evil'], {
    cfg: config({ stripHeaders: [], headers: { subject: 'X-Verified-Sub', issuer: 'x-verified-iss' } }),
  })
  assert.equal(out['x-verified-sub'], undefined)
  assert.equal(out['x-verified-iss'], undefined)
})

test('a configured name or prefix also strips its underscore spelling; other underscore names pass', () => {
  const out = run(['X_Tenant', 'forged', 'x_tenant_id', 'forged', 'X_Custom_Trace', 'kept', 'x-request_id', 'forged'], { cfg: config({ stripHeaders: ['x-tenant', 'x-tenant-*'] }) })
  assert.equal(out['x_tenant'], undefined)
  assert.equal(out['x_tenant_id'], undefined)
  assert.equal(out['x-request_id'], undefined, 'a mixed spelling of a gateway-owned name')
  assert.equal(out['x_custom_trace'], 'kept')
  assert.equal(out['x-request-id'], 'req-id-0001')
  // And the other way: a configured name with an underscore strips its dashed spelling too.
  const other = run(['X-Tenant', 'forged', 'X_Tenant', 'forged', 'X-Auth-User', 'admin'], { cfg: config({ stripHeaders: ['x_tenant'], headers: { subject: 'x_auth_user' } }) })
  assert.equal(other['x-tenant'], undefined)
  assert.equal(other['x_tenant'], undefined)
  assert.equal(other['x-auth-user'], undefined)
})

test('the header matcher compiles exact names and prefixes case-insensitively', () => {
  const m = createHeaderMatcher(['X-Auth*', 'x-auth-subject', 'X-Scopes'])
  assert.deepEqual([...m.exact], ['x-scopes'])
  assert.deepEqual(m.prefixes, ['x-auth'])
  assert.ok(m.matches('x-auth-anything'))
  assert.ok(m.matches('x-scopes'))
  assert.ok(!m.matches('x-scopesx'))
  assert.throws(() => createHeaderMatcher(['*']))
})

test('request id and trace context are the gateway values, not the client ones', () => {
  const out = run(['X-Request-Id', 'client-chosen', 'traceparent', 'garbage', 'tracestate', 'vendor=1'], {
    traceparent: '00-11111111111111111111111111111111-2222222222222222-01',
    traceId: '11111111111111111111111111111111',
  })
  assert.equal(out['x-request-id'], 'req-id-0001')
  assert.equal(out.traceparent, '00-11111111111111111111111111111111-2222222222222222-01')
  // The client's traceparent was not continued, so its tracestate does not belong to our trace.
  assert.equal(out.tracestate, undefined)
})

test('tracestate is kept when the client traceparent was continued', () => {
  const out = run(['traceparent', `00-${TRACE_ID}-b7ad6b7169203331-01`, 'tracestate', 'congo=t61rcWkgMzE'])
  assert.equal(out.traceparent, OUR_PARENT)
  assert.equal(out.tracestate, 'congo=t61rcWkgMzE')
})

test('X-Forwarded-For from an untrusted peer is replaced by the peer address', () => {
  const out = run(['X-Forwarded-For', '1.2.3.4, 5.6.7.8', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil.example', 'Host', 'gw.example', 'Forwarded', 'for=1.2.3.4'], {
    peer: '::ffff:10.0.0.7',
  })
  assert.equal(out['x-forwarded-for'], '10.0.0.7')
  assert.equal(out['x-forwarded-proto'], 'http')
  assert.equal(out['x-forwarded-host'], 'gw.example')
  assert.equal(out.forwarded, undefined)
})

test('X-Forwarded-For from a trusted proxy is kept and extended with the proxy address', () => {
  const out = run(['X-Forwarded-For', '1.2.3.4', 'X-Forwarded-Proto', 'HTTPS', 'X-Forwarded-Host', 'api.example', 'Host', 'internal', 'Forwarded', 'for=1.2.3.4;proto=https', 'X-Forwarded-Port', '443'], {
    peer: '10.0.0.7',
    trusted: ['10.0.0.0/8'],
  })
  assert.equal(out['x-forwarded-for'], '1.2.3.4, 10.0.0.7')
  assert.equal(out['x-forwarded-proto'], 'https')
  assert.equal(out['x-forwarded-host'], 'api.example')
  assert.equal(out.forwarded, 'for=1.2.3.4;proto=https, for=10.0.0.7')
  // Only the X-Forwarded-* fields the gateway computes are sent.
  assert.equal(out['x-forwarded-port'], undefined)
})

test('a trusted proxy without X-Forwarded-For gets a chain of just itself', () => {
  const out = run(['Host', 'gw'], { peer: '10.0.0.7', trusted: ['10.0.0.7'] })
  assert.equal(out['x-forwarded-for'], '10.0.0.7')
  assert.equal(out['x-forwarded-proto'], 'http')
})

test('Via names the gateway hop after any earlier ones', () => {
  assert.equal(run([])?.via, '1.1 portcullis')
  assert.equal(run(['Via', '1.1 edge'], { httpVersion: '1.0' })?.via, '1.1 edge, 1.0 portcullis')
})

test('Content-Length together with Transfer-Encoding is refused', () => {
  assert.equal(rejectionReason(() => run(['Content-Length', '5', 'Transfer-Encoding', 'chunked'])), 'content_length_with_transfer_encoding')
})

test('a Transfer-Encoding other than chunked is refused', () => {
  assert.equal(rejectionReason(() => run(['Transfer-Encoding', 'gzip, chunked'])), 'transfer_encoding')
  assert.doesNotThrow(() => run(['Transfer-Encoding', 'Chunked']))
})

test('Transfer-Encoding on an HTTP/1.0 request is refused, and the connection is closed after the answer', () => {
  assert.equal(rejectionReason(() => run(['Transfer-Encoding', 'chunked'], { httpVersion: '1.0' })), 'transfer_encoding_http10')
  assert.equal(lastRes?.shouldKeepAlive, false)
  assert.doesNotThrow(() => run(['Content-Length', '3'], { httpVersion: '1.0' }))
  assert.equal(lastRes?.shouldKeepAlive, true)
})

test('a request line of another HTTP version than 1.0 or 1.1 is refused', () => {
  assert.equal(rejectionReason(() => run([], { httpVersion: '0.9' })), 'http_version')
  assert.equal(rejectionReason(() => run(['Host', 'gw.example'], { httpVersion: '2.0' })), 'http_version')
})

test('several Host field lines or an invalid Host are refused, and the connection is closed after the answer', () => {
  assert.equal(rejectionReason(() => run(['-Host', 'Accept', '*/*'])), 'missing_host')
  assert.equal(run(['-Host', 'Accept', '*/*'], { httpVersion: '1.0' })['x-forwarded-host'], undefined, 'HTTP/1.0 needs no Host')
  assert.equal(rejectionReason(() => run(['Host', 'good.example', 'host', 'evil.example'])), 'multiple_host')
  assert.equal(lastRes?.shouldKeepAlive, false)
  assert.equal(rejectionReason(() => run(['Host', 'good.example', 'Host', 'good.example'])), 'multiple_host')
  for (const bad of ['', 'good.example, evil.example', 'good.example,evil.example', 'evil.example/x', 'a@evil.example', 'evil.example:80x', 'good example', '[::1', 'evil.example:123456', '%zz']) {
    assert.equal(rejectionReason(() => run(['Host', bad])), 'invalid_host', JSON.stringify(bad))
  }
  for (const good of ['gw.example', 'gw.example:8080', '127.0.0.1:1', '[::1]:8080', '[2001:db8::1]', 'under_score.example', 'xn--caf-dma.example', 'gw.example:']) {
    assert.equal(run(['Host', good])['x-forwarded-host'], good, good)
    assert.equal(lastRes?.shouldKeepAlive, true)
  }
})

test('duplicate Content-Length fields with different values are refused, equal ones are not', () => {
  assert.equal(rejectionReason(() => run(['Content-Length', '5', 'content-length', '6'])), 'conflicting_content_length')
  assert.equal(rejectionReason(() => run(['Content-Length', '5, 6'])), 'invalid_content_length')
  assert.equal(run(['Content-Length', '5', 'Content-Length', '5'])['content-length'], '5')
})

test('property: a client identity header never reaches the upstream, however its name is cased or spelled with "_" for "-"', () => {
  // Every exact name of the default list, and every prefix with a random tail; then random case
  // per letter and random "_" for "-": all name the same variable to CGI-style servers.
  const exact = DEFAULT_STRIP.filter((n) => !n.endsWith('*'))
  const prefixes = DEFAULT_STRIP.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1))
  const protectedName = fc.oneof(
    fc.constantFrom(...exact, 'x-auth-subject', 'x-auth-client-id', 'x-auth-scopes', 'x-auth-issuer', 'client-cert', 'client-cert-chain', 'x-forwarded-user', 'x-real-ip', 'forwarded'),
    fc.tuple(fc.constantFrom(...prefixes), fc.stringMatching(/^[a-z0-9-]{0,8}$/)).map(([p, tail]) => p + tail),
  )
  const spelled = protectedName.chain((name) =>
    fc.array(fc.tuple(fc.boolean(), fc.boolean()), { minLength: name.length, maxLength: name.length }).map((flips) =>
      [...name].map((c, i) => (c === '-' && flips[i][1] ? '_' : flips[i][0] ? c.toUpperCase() : c)).join(''),
    ),
  )
  fc.assert(
    fc.property(spelled, (name) => {
      const out = run([name, 'forged-value', 'Accept', 'text/plain'])
      assert.ok(!Object.values(out).includes('forged-value'), `${name} passed: ${JSON.stringify(out)}`)
      assert.equal(out.accept, 'text/plain')
    }),
    { numRuns: 3000 },
  )
})

test('with routes by host, a trusted proxy\'s X-Forwarded-Host must name the host the route was chosen by', () => {
  const byHost = config({ routes: [{ hosts: ['api.example'] }, {}] })
  const trusted = { peer: '10.0.0.1', trusted: ['10.0.0.0/8'], cfg: byHost }
  // The same host, however spelled: forwarded as the proxy wrote it.
  assert.equal(run(['Host', 'api.example', 'X-Forwarded-Host', 'API.example:443'], trusted)['x-forwarded-host'], 'API.example:443')
  assert.equal(run(['Host', 'api.example:8080', 'X-Forwarded-Host', 'api.example., other.example'], trusted)['x-forwarded-host'], 'api.example., other.example')
  // Another host: the route was chosen for one host, the upstream would be told another.
  for (const xfh of ['admin.example', 'api.example.evil', 'api%2eexample', '', 'other.example, api.example']) {
    assert.equal(rejectionReason(() => run(['Host', 'api.example', 'X-Forwarded-Host', xfh], trusted)), 'forwarded_host_mismatch', xfh)
  }
  // A proxy that rewrote Host to its upstream's name while the client asked for api.example.
  assert.equal(rejectionReason(() => run(['Host', 'gateway.internal', 'X-Forwarded-Host', 'api.example'], trusted)), 'forwarded_host_mismatch')
  // Not from a trusted proxy: the client's X-Forwarded-Host is dropped, as always, and the Host is forwarded.
  assert.equal(run(['Host', 'api.example', 'X-Forwarded-Host', 'admin.example'], { cfg: byHost })['x-forwarded-host'], 'api.example')
  // Without routes by host the trusted value passes as before.
  assert.equal(run(['Host', 'gateway.internal', 'X-Forwarded-Host', 'api.example'], { peer: '10.0.0.1', trusted: ['10.0.0.0/8'] })['x-forwarded-host'], 'api.example')
})
