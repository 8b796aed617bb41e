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

test('admit caches a token the second time it verifies, not the first', () => {
  const cache = new TokenCache(10)
  cache.admit('t', identity(1e12, 'first'), 0)
  assert.equal(cache.get('t', 0), undefined, 'first sight: only the digest is remembered')
  cache.admit('t', identity(1e12, 'second'), 0)
  assert.equal(cache.get('t', 0)?.subject, 'second')
})

test('the seen set is bounded: a flood of one-shot tokens forgets the oldest and never fills the cache', () => {
  const cache = new TokenCache(3)
  cache.admit('hot', identity(1e12, 'hot'), 0)
  cache.admit('hot', identity(1e12, 'hot'), 0)
  for (const k of ['a', 'b', 'c', 'd', 'e']) cache.admit(k, identity(1e12, k), 0)
  assert.equal(cache.size, 1, 'one-shot tokens take no cache entries')
  assert.equal(cache.get('hot', 0)?.subject, 'hot', 'nor evict a busy token')
  cache.admit('a', identity(1e12, 'a'), 0)
  assert.equal(cache.get('a', 0), undefined, '"a" was pushed out of the seen set by later tokens')
  cache.admit('e', identity(1e12, 'e'), 0)
  assert.equal(cache.get('e', 0)?.subject, 'e')
})

test('dropIssuer removes that issuer entries only', () => {
  const cache = new TokenCache(10)
  cache.set('a1', identity(10_000, 'a1'), 0)
  cache.set('b1', { ...identity(10_000, 'b1'), issuerId: 'other' }, 0)
  cache.set('a2', identity(10_000, 'a2'), 0)
  cache.dropIssuer('main')
  assert.equal(cache.get('a1', 1), undefined)
  assert.equal(cache.get('a2', 1), undefined)
  assert.equal(cache.get('b1', 1)?.subject, 'b1')
  // A dropped token was seen: its next successful verification caches it again at once.
  cache.admit('a1', identity(10_000, 'a1'), 2)
  assert.equal(cache.get('a1', 3)?.subject, 'a1')
})
