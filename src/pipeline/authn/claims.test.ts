import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../errors/gateway-error.js'
import { buildIdentity, checkClaims, checkHeaderPolicy, checkHeaderShape, normalizeTyp, parseScopes, type TokenPolicy } from './claims.js'

const NOW_MS = 1_700_000_000_000
const NOW = NOW_MS / 1000

const policy: TokenPolicy = {
  issuer: 'https://idp.example',
  audiences: ['api://orders'],
  algorithms: new Set(['RS256', 'ES256']),
  clockToleranceSec: 30,
  maxTokenAgeSec: undefined,
  maxTokenLifetimeSec: 3600,
  requiredTyp: undefined,
}

const claims = (over: Record<string, unknown> = {}) => ({
  iss: 'https://idp.example',
  aud: 'api://orders',
  sub: 'u1',
  iat: NOW - 10,
  exp: NOW + 300,
  ...over,
})

function failure(fn: () => unknown): GatewayError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`)
    return err
  }
  assert.fail('expected a failure')
}

const reasonOf = (fn: () => unknown) => failure(fn).reason

test('a well-formed token passes the claim checks at the injected time', () => {
  checkClaims(claims(), policy, NOW_MS)
})

test('an expired token is ERR_AUTHN_EXPIRED once past exp plus the clock skew, and not before', () => {
  checkClaims(claims({ exp: NOW - 29, iat: NOW - 100 }), policy, NOW_MS)
  const err = failure(() => checkClaims(claims({ exp: NOW - 30, iat: NOW - 100 }), policy, NOW_MS))
  assert.equal(err.code, 'ERR_AUTHN_EXPIRED')
})

test('a token without exp is refused', () => {
  const c = claims()
  delete (c as Record<string, unknown>).exp
  assert.equal(reasonOf(() => checkClaims(c, policy, NOW_MS)), 'missing_exp')
})

test('numeric dates that are not numbers are refused', () => {
  for (const over of [{ exp: String(NOW + 100) }, { nbf: 'yesterday' }, { iat: null }, { exp: Number.POSITIVE_INFINITY }]) {
    assert.equal(reasonOf(() => checkClaims(claims(over), policy, NOW_MS)), 'claim_type', JSON.stringify(over))
  }
})

test('nbf in the future beyond the skew is not_yet_valid; within the skew it passes', () => {
  checkClaims(claims({ nbf: NOW + 30 }), policy, NOW_MS)
  const err = failure(() => checkClaims(claims({ nbf: NOW + 31 }), policy, NOW_MS))
  assert.equal(err.code, 'ERR_AUTHN_INVALID_TOKEN')
  assert.equal(err.reason, 'not_yet_valid')
})

test('iat in the future beyond the skew is refused', () => {
  assert.equal(reasonOf(() => checkClaims(claims({ iat: NOW + 31 }), policy, NOW_MS)), 'iat_in_future')
})

test('a lifetime above maxTokenLifetimeSec is refused, measured from iat or else from now', () => {
  checkClaims(claims({ iat: NOW, exp: NOW + 3600 }), policy, NOW_MS)
  assert.equal(reasonOf(() => checkClaims(claims({ iat: NOW, exp: NOW + 3601 }), policy, NOW_MS)), 'lifetime')
  const noIat = claims({ exp: NOW + 3601 })
  delete (noIat as Record<string, unknown>).iat
  assert.equal(reasonOf(() => checkClaims(noIat, policy, NOW_MS)), 'lifetime')
})

test('iss must equal the issuer exactly (no trailing-slash normalization)', () => {
  assert.equal(reasonOf(() => checkClaims(claims({ iss: 'https://idp.example/' }), policy, NOW_MS)), 'wrong_issuer')
})

test('aud must contain one of the configured audiences, as a string or in an array', () => {
  checkClaims(claims({ aud: ['other', 'api://orders'] }), policy, NOW_MS)
  for (const aud of ['other', ['a', 'b'], undefined, 42, [42]]) {
    assert.equal(reasonOf(() => checkClaims(claims({ aud }), policy, NOW_MS)), 'wrong_audience', JSON.stringify(aud))
  }
})

test('with no configured audiences any aud is accepted, but it must still be well-typed', () => {
  const open = { ...policy, audiences: [] }
  checkClaims(claims({ aud: 'whatever' }), open, NOW_MS)
  assert.equal(reasonOf(() => checkClaims(claims({ aud: 7 }), open, NOW_MS)), 'claim_type')
})

test('ID-token markers (nonce, at_hash, c_hash) are never accepted in an access token', () => {
  for (const over of [{ nonce: 'n' }, { at_hash: 'h' }, { c_hash: 'h' }]) {
    assert.equal(reasonOf(() => checkClaims(claims(over), policy, NOW_MS)), 'id_token_markers')
  }
})

test('identity claims of the wrong type are refused', () => {
  for (const over of [{ sub: 1 }, { client_id: {} }, { scope: ['a'] }, { scp: { a: 'b' } }, { scp: 5 }, { jti: 5 }]) {
    assert.equal(reasonOf(() => checkClaims(claims(over), policy, NOW_MS)), 'claim_type', JSON.stringify(over))
  }
})

test('"none" is refused in every casing before anything else', () => {
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    assert.equal(reasonOf(() => checkHeaderShape({ alg })), 'alg_not_allowed')
  }
  assert.equal(reasonOf(() => checkHeaderShape({})), 'alg_not_allowed')
})

test('headers that embed or point to a key are refused', () => {
  for (const name of ['jku', 'x5u', 'jwk', 'x5c']) {
    assert.equal(reasonOf(() => checkHeaderShape({ alg: 'RS256', [name]: 'x' })), 'embedded_key_header', name)
  }
})

test('any crit header is refused', () => {
  assert.equal(reasonOf(() => checkHeaderShape({ alg: 'RS256', crit: ['exp'] })), 'crit')
  assert.equal(reasonOf(() => checkHeaderShape({ alg: 'RS256', crit: [] })), 'crit')
})

test('only allowlisted algorithms pass, compared case-sensitively', () => {
  checkHeaderPolicy({ alg: 'RS256' }, policy)
  for (const alg of ['HS256', 'rs256', 'PS256']) {
    assert.equal(reasonOf(() => checkHeaderPolicy({ alg }, policy)), 'alg_not_allowed', alg)
  }
})

test('a required typ matches case-insensitively with or without the application/ prefix', () => {
  const p = { ...policy, requiredTyp: normalizeTyp('at+jwt') }
  for (const typ of ['at+jwt', 'AT+JWT', 'application/at+jwt', 'Application/At+Jwt']) checkHeaderPolicy({ alg: 'RS256', typ }, p)
  for (const typ of ['JWT', undefined, 'at+jwt2', 'application/jwt']) {
    assert.equal(reasonOf(() => checkHeaderPolicy({ alg: 'RS256', typ }, p)), 'typ', String(typ))
  }
})

test('without a required typ, a typ naming another kind of JWT is still refused', () => {
  for (const typ of ['JWT', 'at+jwt', 'application/at+jwt', undefined]) checkHeaderPolicy({ alg: 'RS256', typ }, policy)
  for (const typ of ['logout+jwt', 'dpop+jwt', 'secevent+jwt']) {
    assert.equal(reasonOf(() => checkHeaderPolicy({ alg: 'RS256', typ }, policy)), 'typ', typ)
  }
})

test('scopes come from the space-delimited scope claim, else from scp (an array or a space-delimited string)', () => {
  assert.deepEqual([...parseScopes({ scope: 'a  b c' })], ['a', 'b', 'c'])
  assert.deepEqual([...parseScopes({ scope: ' a ' })], ['a'])
  assert.deepEqual([...parseScopes({ scp: ['x', 'y'] })], ['x', 'y'])
  assert.deepEqual([...parseScopes({ scp: ' User.Read  Mail.Send ' })], ['User.Read', 'Mail.Send'])
  assert.deepEqual([...parseScopes({ scope: 'a', scp: ['b'] })], ['a'])
  assert.deepEqual([...parseScopes({ scope: 'a', scp: 'b c' })], ['a'])
  assert.deepEqual([...parseScopes({ scope: '', scp: ['b'] })], [])
  assert.deepEqual([...parseScopes({})], [])
})

// Scopes are forwarded joined with spaces (x-auth-scopes, internal tokens): an entry that is not a
// scope-token would be read downstream as other scopes than the ones judged here.
const BAD_SCOPES = ['x orders:admin', '', ' ', 'a\tb', 'a\nb', 'a\x00', 'a\x7f', 'a"b', 'a\\b', 'ordérs', 'a\u00a0b', 'a\u2028b']

test('an scp entry that is not an RFC 6749 scope-token is refused as claim_type', () => {
  for (const bad of BAD_SCOPES) {
    for (const scp of [[bad], ['basic', bad]]) {
      assert.equal(reasonOf(() => checkClaims(claims({ scp }), policy, NOW_MS)), 'claim_type', JSON.stringify(scp))
      // Even when scope takes precedence, a bad scp is not let through.
      assert.equal(reasonOf(() => checkClaims(claims({ scope: 'basic', scp }), policy, NOW_MS)), 'claim_type', JSON.stringify(scp))
      assert.equal(reasonOf(() => parseScopes({ scp })), 'claim_type', JSON.stringify(scp))
    }
  }
  assert.equal(reasonOf(() => checkClaims(claims({ scp: ['a', 1] }), policy, NOW_MS)), 'claim_type')
})

test('a scope or scp string is split on spaces only, and each part must be a scope-token', () => {
  for (const value of ['a\tb', 'a\r\nb', 'basic "orders:admin"', 'a\\b', 'ordérs read', 'read\u00a0write', 'a\x00']) {
    for (const over of [{ scope: value }, { scp: value }]) {
      assert.equal(reasonOf(() => checkClaims(claims(over), policy, NOW_MS)), 'claim_type', JSON.stringify(over))
      assert.equal(reasonOf(() => parseScopes(over)), 'claim_type', JSON.stringify(over))
    }
  }
  for (const value of ['', '   ', ' a  b ', '!#$%&()*+,-./:;<=>?@[]^_`{|}~ https://api.example/orders.read']) {
    checkClaims(claims({ scope: value }), policy, NOW_MS)
    checkClaims(claims({ scp: value }), policy, NOW_MS)
  }
  assert.deepEqual([...parseScopes({ scope: '!#[]~ a:b' })], ['!#[]~', 'a:b'])
  checkClaims(claims({ scp: [] }), policy, NOW_MS)
})

test('the identity takes client_id, else azp, and expires at exp in milliseconds', () => {
  const id = buildIdentity(claims({ azp: 'web', jti: 'j1', scope: 'r w' }), 'main', 'digest')
  assert.equal(id.clientId, 'web')
  assert.equal(id.issuerId, 'main')
  assert.equal(id.issuer, 'https://idp.example')
  assert.equal(id.subject, 'u1')
  assert.equal(id.jti, 'j1')
  assert.equal(id.expiresAt, (NOW + 300) * 1000)
  assert.ok(id.scopes.has('w'))
  assert.equal(buildIdentity(claims({ azp: 'web', client_id: 'cli' }), 'main', 'd').clientId, 'cli')
  assert.ok(Object.isFrozen(id.claims))
})
