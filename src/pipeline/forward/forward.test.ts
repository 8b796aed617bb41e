import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { errors as undiciErrors } from 'undici'
import type { Identity } from '../stage.js'
import { createIdentityHeaderWriter, headerSafe } from './identity-headers.js'
import { droppedResponseFields, responseHeaders, trailerFields } from './response-headers.js'
import { errorCode, mapUpstreamError } from './upstream-error.js'
import { basePathOf, stripSegments, upstreamPath } from './upstream-path.js'

test('the upstream path is prefix + path + query, sent as given', () => {
  assert.equal(upstreamPath('', '/a/b%2Fc', undefined, '?x=%20'), '/a/b%2Fc?x=%20')
  assert.equal(upstreamPath('/base', '/a', undefined, ''), '/base/a')
  assert.equal(upstreamPath('/base', '/', undefined, '?q'), '/base/?q')
})

test('stripPrefix removes only a whole-segment prefix', () => {
  assert.equal(stripSegments('/api/users', '/api'), '/users')
  assert.equal(stripSegments('/api/users', '/api/'), '/users')
  assert.equal(stripSegments('/api', '/api'), '')
  assert.equal(stripSegments('/apix/users', '/api'), '/apix/users')
  assert.equal(stripSegments('/other', '/api'), '/other')
  assert.equal(stripSegments('/a', '/'), '/a')
  assert.equal(upstreamPath('', '/api', '/api', ''), '/')
  assert.equal(upstreamPath('', '/api/', '/api', '?x'), '/?x')
  assert.equal(upstreamPath('/v2', '/api', '/api', ''), '/v2')
  assert.equal(upstreamPath('/v2', '/api/items', '/api', '?p=1'), '/v2/items?p=1')
})

test('the upstream base path loses its trailing slashes', () => {
  assert.equal(basePathOf(new URL('http://u:8080')), '')
  assert.equal(basePathOf(new URL('http://u:8080/')), '')
  assert.equal(basePathOf(new URL('http://u/base//')), '/base')
  assert.equal(basePathOf(new URL('http://u/a%20b/c')), '/a%20b/c')
})

const raw = (...pairs: string[]): Buffer[] => pairs.map((s) => Buffer.from(s, 'latin1'))

test('response hop-by-hop headers are dropped, content-length is kept and x-request-id is ours', () => {
  const out = responseHeaders(
    raw('Content-Type', 'text/plain', 'Content-Length', '5', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'X-Hop', '1', 'X-Request-Id', 'upstream-id', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Proxy-Authenticate', 'Basic'),
    'our-id',
  )
  assert.deepEqual(out, ['Content-Type', 'text/plain', 'Content-Length', '5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'x-request-id', 'our-id'])
})

test('a response transfer coding other than chunked is refused, chunked in any case is not', () => {
  assert.deepEqual(responseHeaders(raw('Transfer-Encoding', 'Chunked'), 'id'), ['x-request-id', 'id'])
  for (const coding of ['gzip, chunked', 'gzip', 'identity', 'chunked, chunked']) {
    assert.throws(() => responseHeaders(raw('Transfer-Encoding', coding), 'id'), (err: Error & { code?: string }) => mapUpstreamError(err, false).error.reason === 'invalid_response')
  }
})

test('trailers keep what a trailer section may carry (a gRPC status), from raw Buffers or an object; framing, routing, authentication and dropped fields go', () => {
  const raw = ['grpc-status', '5', 'Grpc-Message', 'no such item', 'content-length', '3', 'Set-Cookie', 'a=1', 'connection', 'close', 'server', 'x/1.0', 'x-checksum', 'ab', 'x-checksum', 'cd'].map((v) => Buffer.from(v))
  const drop = droppedResponseFields(['server'])
  assert.deepEqual(trailerFields(raw, drop), { 'grpc-status': '5', 'grpc-message': 'no such item', 'x-checksum': ['ab', 'cd'] })
  assert.deepEqual(trailerFields({ 'grpc-status': '0', ':status': '200', authorization: 'Bearer x', host: 'h', trailer: 'x' }, drop), { 'grpc-status': '0' })
  assert.equal(trailerFields({}, drop), undefined)
  assert.equal(trailerFields([], drop), undefined)
})

test('response header bytes outside ASCII pass through unchanged', () => {
  const value = Buffer.from('café', 'utf8')
  const out = responseHeaders([Buffer.from('X-Name'), value], 'id')
  assert.deepEqual(Buffer.from(out[1], 'latin1'), value)
})

const identity = (over: Partial<Identity> = {}): Identity => ({
  issuer: 'https://idp.example',
  issuerId: 'idp',
  subject: 'user-1',
  clientId: 'client-1',
  scopes: new Set(['write', 'read', 'admin']),
  jti: undefined,
  tokenDigest: 'x',
  expiresAt: 0,
  claims: {},
  ...over,
})

test('identity headers carry the verified identity, scopes sorted', () => {
  const write = createIdentityHeaderWriter({ subject: 'X-Auth-Subject', clientId: 'x-auth-client-id', scopes: 'x-auth-scopes', issuer: 'x-auth-issuer' })
  const headers: Record<string, string | string[]> = {}
  write(headers, identity())
  assert.deepEqual(headers, { 'x-auth-subject': 'user-1', 'x-auth-client-id': 'client-1', 'x-auth-scopes': 'admin read write', 'x-auth-issuer': 'https://idp.example' })
  const partial: Record<string, string | string[]> = {}
  write(partial, identity({ subject: undefined, clientId: undefined, scopes: new Set() }))
  assert.deepEqual(partial, { 'x-auth-issuer': 'https://idp.example' })
})

test('a cached identity gets the same identity headers on every request, and another identity its own', () => {
  const write = createIdentityHeaderWriter({ subject: 'x-auth-subject', clientId: 'x-auth-client-id', scopes: 'x-auth-scopes', issuer: 'x-auth-issuer' })
  const cached = identity()
  const other = identity({ subject: 'user-2', clientId: undefined, scopes: new Set(['read']) })
  const first: Record<string, string | string[]> = {}
  const again: Record<string, string | string[]> = { 'x-other': 'kept' }
  const second: Record<string, string | string[]> = {}
  write(first, cached)
  write(second, other)
  write(again, cached)
  assert.deepEqual(again, { ...first, 'x-other': 'kept' })
  assert.deepEqual(second, { 'x-auth-subject': 'user-2', 'x-auth-scopes': 'read', 'x-auth-issuer': 'https://idp.example' })
})

test('identity values that could break a header are percent-encoded', () => {
  assert.equal(headerSafe('user-1'), 'user-1')
  assert.equal(headerSafe('a b'), 'a b')
  assert.equal(headerSafe('admin\r\nx-auth-scopes: admin'), 'admin%0D%0Ax-auth-scopes:%20admin')
  assert.equal(headerSafe('josé'), 'jos%C3%A9')
  assert.equal(headerSafe(' x'), '%20x')
  assert.equal(headerSafe('50%\u0000'), '50%25%00')
  // A "%" is always escaped: decoding gives back the value, whichever way it was sent.
  assert.equal(headerSafe('caf%C3%A9'), 'caf%25C3%25A9')
  assert.notEqual(headerSafe('caf%C3%A9'), headerSafe('café'))
})

test('property: an identity value is sent as visible ASCII and spaces only, and percent-decoding gives it back', () => {
  // Any well-formed text: ASCII, controls, "%", non-ASCII and astral characters.
  const text = fc.string({ unit: fc.oneof(fc.constantFrom('%', ' ', '\t', '\r', '\n', '\u0000', '\u007f', 'é', '\u2028', '😀', '%2', '%41'), fc.integer({ min: 0, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff).map((c) => String.fromCodePoint(c))), maxLength: 30 })
  fc.assert(
    fc.property(text, (value) => {
      const sent = headerSafe(value)
      assert.match(sent, /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$|^$/, JSON.stringify(value))
      assert.equal(decodeURIComponent(sent), value, JSON.stringify(value))
    }),
    { numRuns: 5000 },
  )
})

function coded(code: string): Error {
  return Object.assign(new Error(`upstream said: secret detail ${code}`), { code })
}

test('undici timeouts map to ERR_FORWARD_TIMEOUT with a machine reason', () => {
  for (const [code, reason] of [
    ['UND_ERR_CONNECT_TIMEOUT', 'connect_timeout'],
    ['UND_ERR_HEADERS_TIMEOUT', 'headers_timeout'],
    ['UND_ERR_BODY_TIMEOUT', 'body_timeout'],
  ]) {
    const { error, known } = mapUpstreamError(coded(code), false)
    assert.equal(error.code, 'ERR_FORWARD_TIMEOUT')
    assert.equal(error.reason, reason)
    assert.equal(error.detail, undefined)
    assert.ok(known)
  }
})

test('connection failures map to ERR_FORWARD_UNAVAILABLE without upstream text', () => {
  for (const [code, reason] of [
    ['ECONNREFUSED', 'connect_refused'],
    ['ECONNRESET', 'connection_reset'],
    ['UND_ERR_SOCKET', 'socket_closed'],
    ['ENOTFOUND', 'dns_failure'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls_failure'],
  ]) {
    const { error } = mapUpstreamError(coded(code), false)
    assert.equal(error.code, 'ERR_FORWARD_UNAVAILABLE')
    assert.equal(error.reason, reason)
    assert.ok(!error.message.includes('secret'))
  }
  const other = mapUpstreamError(new Error('???'), false)
  assert.equal(other.error.reason, 'upstream_error')
  assert.equal(other.known, false)
})

test('undici\'s own errors for a malformed or oversized response head map to invalid_response', () => {
  // undici 7 leaves HTTPParserError's code undefined: only its name tells it apart.
  const parser = new undiciErrors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid header value char)')
  for (const err of [parser, new undiciErrors.HeadersOverflowError()]) {
    const { error, known } = mapUpstreamError(err, false)
    assert.equal(error.code, 'ERR_FORWARD_UNAVAILABLE')
    assert.equal(error.reason, 'invalid_response')
    assert.ok(known)
  }
  const tls = mapUpstreamError(coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), false)
  assert.equal(tls.error.reason, 'tls_failure')
  assert.ok(tls.known)
})

test('a failure after the response started is reported as an aborted response', () => {
  assert.equal(mapUpstreamError(coded('UND_ERR_SOCKET'), true).error.reason, 'response_aborted')
  assert.equal(mapUpstreamError(coded('UND_ERR_BODY_TIMEOUT'), true).error.code, 'ERR_FORWARD_TIMEOUT')
})

test('the error code of a happy-eyeballs AggregateError is its first inner code', () => {
  const agg = new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')])
  assert.equal(errorCode(agg), 'ECONNREFUSED')
  assert.equal(mapUpstreamError(agg, false).error.reason, 'connect_refused')
})

test('a bodiless answer (304) is complete at its headers: later body bytes and a length complaint are ignored', async () => {
  const { EventEmitter } = await import('node:events')
  const { ForwardHandler } = await import('./handler.js')
  const pino = (await import('pino')).default
  const written: string[] = []
  const res = Object.assign(new EventEmitter(), {
    destroyed: false,
    headersSent: false,
    writableEnded: false,
    writeHead(status: number) {
      written.push(`head ${status}`)
      this.headersSent = true
    },
    write(chunk: Buffer) {
      if (this.writableEnded) throw new Error('write after end')
      written.push(`data ${chunk.length}`)
      return true
    },
    end() {
      written.push('end')
      this.writableEnded = true
    },
    destroy() {
      written.push('destroy')
    },
  })
  let resolved = 0
  let rejected = 0
  const ctx = { id: 'req-1', method: 'GET', req: { complete: true }, res } as never
  const h = new ForwardHandler(ctx, () => resolved++, () => rejected++, pino({ level: 'silent' }), 'up', 30_000)
  h.onConnect(() => {})
  h.onHeaders(304, [Buffer.from('content-length'), Buffer.from('1234')], () => {})
  assert.equal(h.onData(Buffer.from('stray')), true)
  h.onError(Object.assign(new Error('length'), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' }))
  h.onComplete()
  assert.deepEqual(written, ['head 304', 'end'])
  assert.equal(resolved, 1)
  assert.equal(rejected, 0)
})
