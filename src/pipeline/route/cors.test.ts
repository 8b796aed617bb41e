import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isGatewayError } from '../../errors/gateway-error.js'
import { compileCors, isPreflight, withoutUpstreamCors } from './cors.js'

const base = { allowHeaders: ['authorization', 'content-type'], exposeHeaders: ['x-request-id'], allowCredentials: false, maxAgeSec: 600 }

function refusal(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (isGatewayError(err) && err.code === 'ERR_ROUTE_CORS_REJECTED') return err.reason
    throw err
  }
  return undefined
}

test('a preflight is an OPTIONS with Origin and Access-Control-Request-Method', () => {
  assert.equal(isPreflight('OPTIONS', { origin: 'https://a.example', 'access-control-request-method': 'GET' }), true)
  assert.equal(isPreflight('OPTIONS', { origin: 'https://a.example' }), false)
  assert.equal(isPreflight('OPTIONS', { 'access-control-request-method': 'GET' }), false)
  assert.equal(isPreflight('GET', { origin: 'https://a.example', 'access-control-request-method': 'GET' }), false)
})

test('listed origins only, compared as browsers send them; the answer names the origin and varies with it', () => {
  const cors = compileCors({ ...base, allowOrigins: ['https://app.example.com'] }, ['GET', 'HEAD', 'POST'])
  assert.equal(cors.allows('https://app.example.com'), true)
  assert.equal(cors.allows('https://APP.example.com'), true, 'host names are case-insensitive')
  for (const other of ['https://app.example.com.evil.test', 'http://app.example.com', 'https://evil.test', 'null', 'https://app.example.com:444']) {
    assert.equal(cors.allows(other), false, other)
  }
  assert.deepEqual(cors.responseFields('https://app.example.com'), [
    'access-control-allow-origin',
    'https://app.example.com',
    'vary',
    'Origin',
    'access-control-expose-headers',
    'x-request-id',
  ])
})

test('a preflight gets the route methods, the allowed headers and max-age, or a refusal that names what was not allowed', () => {
  const cors = compileCors({ ...base, allowOrigins: ['https://app.example.com'], allowCredentials: true }, ['GET', 'HEAD'])
  const ok = cors.preflight('https://app.example.com', { 'access-control-request-method': 'GET', 'access-control-request-headers': 'Authorization, accept' })
  assert.equal(ok['access-control-allow-origin'], 'https://app.example.com')
  assert.equal(ok['access-control-allow-methods'], 'GET, HEAD')
  assert.equal(ok['access-control-allow-headers'], 'authorization, content-type')
  assert.equal(ok['access-control-allow-credentials'], 'true')
  assert.equal(ok['access-control-max-age'], '600')
  assert.match(ok.vary, /Origin/)
  assert.equal(refusal(() => cors.preflight('https://evil.test', { 'access-control-request-method': 'GET' })), 'origin')
  assert.equal(refusal(() => cors.preflight('https://app.example.com', { 'access-control-request-method': 'DELETE' })), 'method')
  assert.equal(refusal(() => cors.preflight('https://app.example.com', { 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, x-tenant' })), 'header')
})

test('"*" answers every origin with "*"', () => {
  const cors = compileCors({ ...base, allowOrigins: ['*'] }, ['GET'])
  assert.equal(cors.allows('https://anyone.example'), true)
  assert.equal(cors.responseFields('https://anyone.example')[1], '*')
  assert.equal(cors.preflight('https://anyone.example', { 'access-control-request-method': 'GET' })['access-control-allow-origin'], '*')
})

test("an upstream's Access-Control-* fields are dropped, whatever their case; the rest stay in order", () => {
  const h = ['content-type', 'application/json', 'Access-Control-Allow-Origin', '*', 'x-a', '1', 'access-control-allow-credentials', 'true', 'access-control', 'kept']
  assert.deepEqual(withoutUpstreamCors(h), ['content-type', 'application/json', 'x-a', '1', 'access-control', 'kept'])
})
