import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hasScopes, isVerifyError, requireScopes, VerifyError, type Identity, type VerifyErrorCode } from '@portcullis/verify'

const identity = { scopes: new Set(['orders:read', 'orders:write']) } as unknown as Identity

test('each code has the status and the RFC 6750 challenge the gateway answers with', () => {
  const expected: Record<VerifyErrorCode, [number, string | undefined]> = {
    ERR_AUTHN_MISSING: [401, 'Bearer realm="api"'],
    ERR_AUTHN_MALFORMED: [400, 'Bearer realm="api", error="invalid_request"'],
    ERR_AUTHN_INVALID_TOKEN: [401, 'Bearer realm="api", error="invalid_token"'],
    ERR_AUTHN_EXPIRED: [401, 'Bearer realm="api", error="invalid_token"'],
    ERR_AUTHN_IDP_UNAVAILABLE: [503, undefined],
    ERR_AUTHZ_INSUFFICIENT_SCOPE: [403, 'Bearer realm="api", error="insufficient_scope"'],
  }
  for (const [code, [status, challenge]] of Object.entries(expected) as Array<[VerifyErrorCode, [number, string | undefined]]>) {
    const err = new VerifyError(code)
    assert.equal(err.status, status, code)
    assert.equal(err.wwwAuthenticate('api'), challenge, code)
    assert.equal(err.name, 'VerifyError')
    assert.ok(err instanceof Error)
  }
})

test('toProblem gives an RFC 9457 body with the code and the gateway type URI, and never the reason', () => {
  const problem = new VerifyError('ERR_AUTHN_EXPIRED', { reason: 'expired' }).toProblem({ instance: 'urn:request:1' })
  assert.deepEqual(problem, {
    type: 'https://portcullis.dev/errors#err-authn-expired',
    title: 'Access token expired',
    status: 401,
    code: 'ERR_AUTHN_EXPIRED',
    instance: 'urn:request:1',
  })
})

test('headers() carries problem+json, no-store, the challenge, and Retry-After when known', () => {
  assert.deepEqual(new VerifyError('ERR_AUTHN_IDP_UNAVAILABLE', { retryAfterSec: 5 }).headers(), {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    'retry-after': '5',
  })
  assert.equal(new VerifyError('ERR_AUTHN_MISSING', { realm: 'orders' }).headers()['www-authenticate'], 'Bearer realm="orders"')
})

test('realm and scope are quoted and escaped, and cannot break the header', () => {
  const err = new VerifyError('ERR_AUTHZ_INSUFFICIENT_SCOPE', { scope: 'a"b\\c' })
  assert.equal(err.wwwAuthenticate('x"\r\ny'), 'Bearer realm="x\\"  y", error="insufficient_scope", scope="a\\"b\\\\c"')
})

test('requireScopes passes when every scope is held, and otherwise throws 403 naming all required scopes', () => {
  requireScopes(identity, 'orders:read')
  requireScopes(identity, 'orders:read', 'orders:write')
  requireScopes(identity)
  try {
    requireScopes(identity, 'orders:read', 'admin')
    assert.fail('no error')
  } catch (err) {
    assert.ok(isVerifyError(err))
    assert.equal(err.code, 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
    assert.equal(err.status, 403)
    assert.equal(err.wwwAuthenticate('api'), 'Bearer realm="api", error="insufficient_scope", scope="orders:read admin"')
  }
})

test('hasScopes is an exact, case-sensitive check of all scopes', () => {
  assert.equal(hasScopes(identity, 'orders:read'), true)
  assert.equal(hasScopes(identity, 'orders:read', 'orders:write'), true)
  assert.equal(hasScopes(identity, 'Orders:read'), false)
  assert.equal(hasScopes(identity, 'orders'), false)
  assert.equal(hasScopes(identity), true)
})

test('isVerifyError recognises a VerifyError from another copy of the package by name and code', () => {
  class VerifyErrorCopy extends Error {
    code = 'ERR_AUTHN_EXPIRED'
    override name = 'VerifyError'
  }
  assert.equal(isVerifyError(new VerifyErrorCopy()), true)
  assert.equal(isVerifyError(Object.assign(new Error('x'), { name: 'VerifyError', code: 'ERR_SOMETHING' })), false)
  assert.equal(isVerifyError(new Error('x')), false)
})
