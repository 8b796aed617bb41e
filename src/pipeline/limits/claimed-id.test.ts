import assert from 'node:assert/strict'
import { test } from 'node:test'
import { claimedAccount, verifiedAccount } from './claimed-id.js'

const ISS = 'https://idp.example'
const jwt = (payload: unknown) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`

test('reads the claimed iss with client_id, else azp, else sub of a bearer JWT without verifying it', () => {
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: ISS, client_id: 'app-1', azp: 'x', sub: 'y' })}`), `${ISS} app-1`)
  assert.equal(claimedAccount(`bearer ${jwt({ iss: ISS, azp: 'web', sub: 'y' })}`), `${ISS} web`)
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: ISS, sub: 'alice' })}`), `${ISS} alice`)
  assert.equal(claimedAccount(`Bearer   ${jwt({ iss: ISS, sub: 'alice' })}`), `${ISS} alice`, 'RFC 6750 allows several spaces')
})

test('yields nothing without an issuer, for opaque tokens, other schemes, junk payloads and oversized headers', () => {
  assert.equal(claimedAccount(`Bearer ${jwt({ client_id: 'app-1' })}`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: 7, client_id: 'app-1' })}`), undefined)
  assert.equal(claimedAccount('Bearer opaque-token-value'), undefined)
  assert.equal(claimedAccount('Basic dXNlcjpwYXNz'), undefined)
  assert.equal(claimedAccount(`Bearer a.${Buffer.from('not json').toString('base64url')}.c`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt([1, 2])}`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: ISS, client_id: 42 })}`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: ISS, client_id: 'x', pad: 'p'.repeat(9000) })}`), undefined)
  assert.equal(claimedAccount(undefined), undefined)
  assert.equal(claimedAccount('Bearer    '), undefined)
  assert.equal(claimedAccount(['Bearer a', 'Bearer b']), undefined)
})

test('bounds the length of a claimed issuer and id', () => {
  assert.equal(claimedAccount(`Bearer ${jwt({ iss: 'i'.repeat(1000), client_id: 'c'.repeat(1000) })}`)!.length, 256 + 1 + 256)
})

test('names a verified identity the way a token names its claimed account', () => {
  assert.equal(verifiedAccount({ issuer: ISS, clientId: 'app-1', subject: 'alice' }), `${ISS} app-1`)
  assert.equal(verifiedAccount({ issuer: ISS, clientId: undefined, subject: 'alice' }), `${ISS} alice`)
  assert.equal(verifiedAccount(undefined), undefined)
})
