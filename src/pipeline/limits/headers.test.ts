import assert from 'node:assert/strict'
import { test } from 'node:test'
import { limitItem, policyItem, retryAfterSeconds } from './headers.js'

test('RateLimit-Policy items carry the quota, the window and a non-default unit', () => {
  assert.equal(policyItem('api', 100, 60), '"api";q=100;w=60')
  assert.equal(policyItem('api.month', 10000, undefined), '"api.month";q=10000')
  assert.equal(policyItem('api.concurrency', 5, undefined, 'concurrent-requests'), '"api.concurrency";q=5;qu="concurrent-requests"')
})

test('RateLimit items carry remaining units and whole seconds to reset, rounded up', () => {
  assert.equal(limitItem('api', 42, 17_001), '"api";r=42;t=18')
  assert.equal(limitItem('api', -1, 0), '"api";r=0;t=0')
})

test('Retry-After is whole seconds, never 0', () => {
  assert.deepEqual([retryAfterSeconds(1), retryAfterSeconds(1000), retryAfterSeconds(1001), retryAfterSeconds(0)], ['1', '1', '2', '1'])
})
