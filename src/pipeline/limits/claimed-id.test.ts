import assert from 'node:assert/strict'
import { test } from 'node:test'
import { claimedAccount, verifiedAccount } from './claimed-id.js'

const jwt = (payload: unknown) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`

test('reads the claimed client_id, else azp, else sub of a bearer JWT without verifying it', () => {
  assert.equal(claimedAccount(`Bearer ${jwt({ client_id: 'app-1', azp: 'x', sub: 'y' })}`), 'app-1')
  assert.equal(claimedAccount(`bearer ${jwt({ azp: 'web', sub: 'y' })}`), 'web')
  assert.equal(claimedAccount(`Bearer ${jwt({ sub: 'alice' })}`), 'alice')
})

test('yields nothing for opaque tokens, other schemes, junk payloads and oversized headers', () => {
  assert.equal(claimedAccount('Bearer opaque-token-value'), undefined)
  assert.equal(claimedAccount('Basic dXNlcjpwYXNz'), undefined)
  assert.equal(claimedAccount(`Bearer a.${Buffer.from('not json').toString('base64url')}.c`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt([1, 2])}`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt({ client_id: 42 })}`), undefined)
  assert.equal(claimedAccount(`Bearer ${jwt({ client_id: 'x', pad: 'p'.repeat(9000) })}`), undefined)
  assert.equal(claimedAccount(undefined), undefined)
  assert.equal(claimedAccount(['Bearer a', 'Bearer b']), undefined)
})

test('bounds the length of a claimed id', () => {
  assert.equal(claimedAccount(`Bearer ${jwt({ client_id: 'c'.repeat(1000) })}`)!.length, 256)
})

test('names a verified identity the way a token names its claimed account', () => {
  assert.equal(verifiedAccount({ clientId: 'app-1', subject: 'alice' }), 'app-1')
  assert.equal(verifiedAccount({ clientId: undefined, subject: 'alice' }), 'alice')
  assert.equal(verifiedAccount(undefined), undefined)
})
