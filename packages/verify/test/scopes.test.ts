import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkAccessTokenClaims, isVerifyError, scopesOf, type Payload, type TokenPolicy } from '@portcullis/verify/rules'

/** The scope rule as the gateway imports it (`@portcullis/verify/rules`), without keys or signatures. */

const NOW = 1_700_000_000
const policy: TokenPolicy = {
  issuer: 'https://idp.example',
  audiences: ['api://orders'],
  algorithms: new Set(['RS256']),
  clockToleranceSec: 5,
  maxTokenAgeSec: undefined,
  maxTokenLifetimeSec: 3600,
  requiredTyp: undefined,
}
const claims = (over: Payload): Payload => ({ iss: policy.issuer, aud: 'api://orders', iat: NOW, exp: NOW + 60, ...over })

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    assert.ok(isVerifyError(err), `a VerifyError, not ${String(err)}`)
    assert.equal(err.code, 'ERR_AUTHN_INVALID_TOKEN')
    return err.reason
  }
  assert.fail('accepted')
}

// Not RFC 6749 §3.3 scope-tokens: empty, space, controls, DEL, quote, backslash, non-ASCII.
const BAD = ['x orders:admin', '', ' ', 'a\tb', 'a\r\nb', 'a\x00', 'a\x7f', 'a"b', 'a\\b', 'ordérs', 'a\u00a0b', 'a\u2028b']

test('scopes come from scope (split on runs of spaces), else from scp (an array, or a string split like scope)', () => {
  assert.deepEqual(scopesOf({ scope: '  orders:read   orders:write ' }), ['orders:read', 'orders:write'])
  assert.deepEqual(scopesOf({ scp: ['orders:read', 'profile'] }), ['orders:read', 'profile'])
  // Microsoft Entra ID access tokens carry scp as a string.
  assert.deepEqual(scopesOf({ scp: ' User.Read  Mail.Send ' }), ['User.Read', 'Mail.Send'])
  assert.deepEqual(scopesOf({ scope: 'a', scp: ['b'] }), ['a'])
  assert.deepEqual(scopesOf({ scope: 'a', scp: 'b c' }), ['a'])
  assert.deepEqual(scopesOf({ scope: '', scp: ['b'] }), [], 'a present scope wins even when empty')
  assert.deepEqual(scopesOf({ scp: [] }), [])
  assert.deepEqual(scopesOf({ scp: '' }), [])
  assert.deepEqual(scopesOf({}), [])
  // Every character the grammar allows.
  const all = '!#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~'
  assert.deepEqual(scopesOf({ scp: [all] }), [all])
  assert.deepEqual(scopesOf({ scope: all }), [all])
  assert.deepEqual(scopesOf({ scp: all }), [all])
  checkAccessTokenClaims(claims({ scp: 'User.Read Mail.Send' }), policy, NOW * 1000)
})

test('an scp entry that is not a scope-token refuses the token (claim_type), whichever claim wins', () => {
  for (const bad of BAD) {
    for (const scp of [[bad], ['basic', bad]]) {
      assert.equal(reasonOf(() => scopesOf({ scp })), 'claim_type', JSON.stringify(scp))
      assert.equal(reasonOf(() => scopesOf({ scope: 'basic', scp })), 'claim_type', JSON.stringify(scp))
      assert.equal(reasonOf(() => checkAccessTokenClaims(claims({ scp }), policy, NOW * 1000)), 'claim_type', JSON.stringify(scp))
    }
  }
  for (const scp of [['a', 1], [null], [['a']], 5, { a: 'b' }, null]) {
    assert.equal(reasonOf(() => checkAccessTokenClaims(claims({ scp }), policy, NOW * 1000)), 'claim_type', JSON.stringify(scp))
  }
})

test('a part of a scope or scp string that is not a scope-token refuses the token (claim_type)', () => {
  for (const value of ['a\tb', 'a\r\nb', 'basic "orders:admin"', 'a\\b', 'ordérs read', 'read\u00a0write', 'a\x00', 'a\x7f']) {
    for (const over of [{ scope: value }, { scp: value }, { scope: 'basic', scp: value }]) {
      assert.equal(reasonOf(() => scopesOf(over)), 'claim_type', JSON.stringify(over))
      assert.equal(reasonOf(() => checkAccessTokenClaims(claims(over), policy, NOW * 1000)), 'claim_type', JSON.stringify(over))
    }
  }
  for (const scope of [['a'], 5, null]) {
    assert.equal(reasonOf(() => checkAccessTokenClaims(claims({ scope }), policy, NOW * 1000)), 'claim_type', JSON.stringify(scope))
  }
  for (const scope of ['', '   ', ' a  b ']) checkAccessTokenClaims(claims({ scope }), policy, NOW * 1000)
})
