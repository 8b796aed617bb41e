import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from './gateway-error.js'
import { toProblem } from './problem.js'

test('a missing token gets a Bearer challenge with a realm and no error code (RFC 6750 §3.1)', () => {
  const p = toProblem(new GatewayError('ERR_AUTHN_MISSING'), 'req-1', 'api')
  assert.equal(p.status, 401)
  assert.equal(p.headers['www-authenticate'], 'Bearer realm="api"')
  assert.equal(p.headers['content-type'], 'application/problem+json')
})

test('insufficient scope names the required scope and escapes quotes and backslashes once', () => {
  const p = toProblem(new GatewayError('ERR_AUTHZ_INSUFFICIENT_SCOPE', { scope: 'a "b" c\\d' }), 'r', 're"alm')
  assert.equal(p.headers['www-authenticate'], 'Bearer realm="re\\"alm", error="insufficient_scope", scope="a \\"b\\" c\\\\d"')
})

test('the body is RFC 9457 with a stable code and request id, and the status comes from the catalog', () => {
  const p = toProblem(new GatewayError('ERR_FORWARD_TIMEOUT', { reason: 'secret internal reason' }), 'abc', 'x')
  const body = JSON.parse(p.body) as Record<string, unknown>
  assert.equal(body.status, 504)
  assert.equal(body.code, 'ERR_FORWARD_TIMEOUT')
  assert.equal(body.requestId, 'abc')
  assert.equal(typeof body.type, 'string')
  assert.equal(typeof body.title, 'string')
  assert.ok(!p.body.includes('secret internal reason'), 'the internal reason is never sent to the client')
  assert.equal(p.headers['www-authenticate'], undefined)
})

test('header injection through realm or scope is neutralised', () => {
  const p = toProblem(new GatewayError('ERR_AUTHZ_INSUFFICIENT_SCOPE', { scope: 'a\r\nSet-Cookie: x=1' }), 'r', 'api')
  assert.ok(!/[\r\n]/.test(p.headers['www-authenticate']))
})

test('every problem response carries the request id and its exact content length', () => {
  const p = toProblem(new GatewayError('ERR_GATEWAY_DRAINING'), 'req-12345678', 'api')
  assert.equal(p.headers['x-request-id'], 'req-12345678')
  assert.equal(p.headers['content-length'], String(Buffer.byteLength(p.body)))
})
