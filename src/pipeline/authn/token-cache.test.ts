import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Identity } from '../stage.js'
import { TokenCache } from './token-cache.js'

const identity = (expiresAt: number, subject = 's'): Identity => ({
  issuer: 'i',
  issuerId: 'main',
  subject,
  clientId: undefined,
  scopes: new Set(),
  jti: undefined,
  tokenDigest: 'd',
  expiresAt,
  claims: {},
})

test('a cached identity is returned until the token expires and never at or after exp', () => {
  const cache = new TokenCache(10)
  cache.set('t', identity(10_000), 1_000)
  assert.equal(cache.get('t', 9_999)?.subject, 's')
  assert.equal(cache.get('t', 10_000), undefined)
  assert.equal(cache.size, 0, 'the expired entry is dropped on read')
})

test('an identity that is already expired is not stored', () => {
  const cache = new TokenCache(10)
  cache.set('t', identity(5_000), 5_000)
  assert.equal(cache.size, 0)
  assert.equal(cache.get('t', 0), undefined)
})

test('the oldest entry is evicted beyond the bound', () => {
  const cache = new TokenCache(3)
  for (const k of ['a', 'b', 'c', 'd']) cache.set(k, identity(1e12, k), 0)
  assert.equal(cache.size, 3)
  assert.equal(cache.get('a', 0), undefined)
  assert.equal(cache.get('d', 0)?.subject, 'd')
})

test('storing a key again renews its place in the eviction order', () => {
  const cache = new TokenCache(2)
  cache.set('a', identity(1e12, 'a'), 0)
  cache.set('b', identity(1e12, 'b'), 0)
  cache.set('a', identity(1e12, 'a2'), 0)
  cache.set('c', identity(1e12, 'c'), 0)
  assert.equal(cache.get('b', 0), undefined)
  assert.equal(cache.get('a', 0)?.subject, 'a2')
})

test('a cache with no room is a configuration error', () => {
  assert.throws(() => new TokenCache(0), RangeError)
})
