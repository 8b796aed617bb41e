import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createClientAddressResolver, parseTrustedProxies } from './client-address.js'

test('without trusted proxies X-Forwarded-For is ignored', () => {
  const r = createClientAddressResolver([])
  assert.equal(r('203.0.113.9', '1.2.3.4'), '203.0.113.9')
})

test('from a trusted proxy, the rightmost untrusted hop is the client', () => {
  const r = createClientAddressResolver(['10.0.0.0/8'])
  assert.equal(r('10.0.0.1', '6.6.6.6, 198.51.100.7, 10.0.0.2'), '198.51.100.7')
  assert.equal(r('::ffff:10.0.0.1', '198.51.100.7'), '198.51.100.7')
})

test('X-Forwarded-For from an untrusted peer is not believed', () => {
  const r = createClientAddressResolver(['10.0.0.0/8'])
  assert.equal(r('198.51.100.7', '10.0.0.5'), '198.51.100.7')
})

test('garbage in the forwarded chain falls back to the peer', () => {
  const r = createClientAddressResolver(['127.0.0.1'])
  assert.equal(r('127.0.0.1', 'not-an-ip'), '127.0.0.1')
})

test('malformed CIDRs are refused instead of trusting everyone', () => {
  for (const bad of ['10.0.0.0/', '10.0.0.0/33', '10.0.0.0/8/1', '10.0.0.0/x', 'example.com', '::/129']) {
    assert.throws(() => parseTrustedProxies([bad]), /not an IP address or CIDR/, bad)
  }
  assert.doesNotThrow(() => parseTrustedProxies(['10.0.0.0/8', '::1', 'fd00::/8', '192.0.2.1']))
})
