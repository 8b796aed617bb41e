import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../errors/gateway-error.js'
import { countAuthorizationHeaders, hasQueryToken, parseAuthorization } from '@portcullis/verify/rules'
import { extractBearer } from './bearer.js'

function failure(fn: () => unknown): GatewayError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof GatewayError, 'expected a GatewayError')
    return err
  }
  assert.fail('expected a failure')
}

const raw = (...values: string[]) => values.flatMap((v) => ['Authorization', v])

test('a single Bearer header yields its token, whatever the scheme casing and number of spaces', () => {
  for (const value of ['Bearer abc.def.ghi', 'bearer abc.def.ghi', 'BEARER   abc.def.ghi']) {
    assert.equal(extractBearer(raw(value), value, ''), 'abc.def.ghi')
  }
})

test('b64token characters and trailing "=" are accepted as RFC 6750 §2.1 allows', () => {
  assert.deepEqual(parseAuthorization('Bearer a-b.c_d~e+f/g=='), { kind: 'bearer', token: 'a-b.c_d~e+f/g==' })
})

test('no Authorization header is ERR_AUTHN_MISSING', () => {
  const err = failure(() => extractBearer(['Host', 'x'], undefined, ''))
  assert.equal(err.code, 'ERR_AUTHN_MISSING')
})

test('another scheme counts as no bearer credentials, not as a malformed one', () => {
  const err = failure(() => extractBearer(raw('Basic dXNlcjpwYXNz'), 'Basic dXNlcjpwYXNz', ''))
  assert.equal(err.code, 'ERR_AUTHN_MISSING')
  assert.equal(err.reason, 'unsupported_scheme')
})

test('a Bearer header without a valid b64token is ERR_AUTHN_MALFORMED', () => {
  for (const value of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer a,b', 'Bearer "abc"', 'Bearer\tabc', '', 'Bearer abc=def', ' Bearer']) {
    const err = failure(() => extractBearer(raw(value), value, ''))
    assert.equal(err.code, 'ERR_AUTHN_MALFORMED', `value ${JSON.stringify(value)}`)
  }
})

test('two Authorization headers are ERR_AUTHN_MALFORMED even though node keeps only the first', () => {
  const rawHeaders = ['Host', 'x', 'Authorization', 'Bearer a.b.c', 'authorization', 'Bearer d.e.f']
  assert.equal(countAuthorizationHeaders(rawHeaders), 2)
  const err = failure(() => extractBearer(rawHeaders, 'Bearer a.b.c', ''))
  assert.equal(err.code, 'ERR_AUTHN_MALFORMED')
  assert.equal(err.reason, 'multiple_authorization')
})

test('an access_token query parameter is ERR_AUTHN_MALFORMED, with or without a header', () => {
  const err = failure(() => extractBearer([], undefined, '?access_token=abc'))
  assert.equal(err.code, 'ERR_AUTHN_MALFORMED')
  assert.equal(err.reason, 'query_token')
  const withHeader = failure(() => extractBearer(raw('Bearer a.b.c'), 'Bearer a.b.c', '?x=1&access_token=abc'))
  assert.equal(withHeader.code, 'ERR_AUTHN_MALFORMED')
})

test('access_token is found in any spelling a framework might decode', () => {
  for (const q of ['?access_token=x', '?a=1&access_token', '?a=1;access_token=x', '?ACCESS_TOKEN=x', '?access%5Ftoken=x', '?acc%65ss_token=x', 'access_token=x', '?access_toke%4E=x', '?access.token=x', '?access+token=x', '?access[token=x', '?access_token[]=x', '?access_token[0]=x']) {
    assert.equal(hasQueryToken(q), true, q)
  }
})

test('other query parameters are not mistaken for a token', () => {
  for (const q of ['', '?', '?a=access_token', '?my_access_token=1', '?access_tokens=1', '?x=%zz', '?token=abc']) {
    assert.equal(hasQueryToken(q), false, q)
  }
})
