import assert from 'node:assert/strict'
import { test } from 'node:test'
import { addressKey, boundedMemo, expandIPv6, keyValue } from './keys.js'

test('IPv4 addresses are counted one by one', () => {
  assert.equal(addressKey('203.0.113.7', 64), '203.0.113.7')
})

test('IPv6 addresses are counted by prefix, so rotating within a /64 does not escape a limit', () => {
  const a = addressKey('2001:db8:1:2:aaaa::1', 64)
  const b = addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff', 64)
  const other = addressKey('2001:db8:1:3::1', 64)
  assert.equal(a, '2001:db8:1:2::/64')
  assert.equal(a, b)
  assert.notEqual(a, other)
  assert.equal(addressKey('2001:db8:1:2:aaaa::1', 48), '2001:db8:1::/48')
  assert.equal(addressKey('2001:db8:1:2ff::1', 56), '2001:db8:1:200::/56')
  assert.equal(addressKey('2001:db8::1', 128), '2001:db8:0:0:0:0:0:1')
})

test('IPv6 text forms are parsed fully: ::, zone ids, embedded IPv4, and garbage refused', () => {
  assert.deepEqual(expandIPv6('::'), [0, 0, 0, 0, 0, 0, 0, 0])
  assert.deepEqual(expandIPv6('::1'), [0, 0, 0, 0, 0, 0, 0, 1])
  assert.deepEqual(expandIPv6('fe80::1%eth0'), [0xfe80, 0, 0, 0, 0, 0, 0, 1])
  assert.deepEqual(expandIPv6('64:ff9b::192.0.2.33'), [0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221])
  assert.deepEqual(expandIPv6('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8])
  assert.equal(expandIPv6('1:2:3'), undefined)
  assert.equal(expandIPv6('1::2::3'), undefined)
  assert.equal(expandIPv6('1:2:3:4:5:6:7:8::'), undefined)
  assert.equal(expandIPv6('12345::'), undefined)
})

test('key values stay readable when safe and become digests when long, odd or ambiguous', () => {
  assert.equal(keyValue('client-42'), 'client-42')
  for (const odd of ['a|b', 'with space', 'x'.repeat(97), 'ünïcode', '#looks-like-a-digest']) {
    const k = keyValue(odd)
    assert.match(k, /^#[A-Za-z0-9_-]{22}$/, odd)
  }
  assert.notEqual(keyValue('a|b'), keyValue('a|c'))
})

test('boundedMemo answers as the function does, asks it once per value, and forgets everything at its bound', () => {
  const asked: string[] = []
  const key = boundedMemo((ip) => {
    asked.push(ip)
    return `ip=${addressKey(ip, 64)}`
  }, 2)
  assert.equal(key('2001:db8::1'), 'ip=2001:db8:0:0::/64')
  assert.equal(key('2001:db8::1'), 'ip=2001:db8:0:0::/64')
  assert.equal(key('192.0.2.1'), 'ip=192.0.2.1')
  assert.deepEqual(asked, ['2001:db8::1', '192.0.2.1'])
  // A third value reaches the bound of 2: the memo starts over, so the first value is asked again.
  assert.equal(key('192.0.2.2'), 'ip=192.0.2.2')
  assert.equal(key('2001:db8::1'), 'ip=2001:db8:0:0::/64')
  assert.deepEqual(asked, ['2001:db8::1', '192.0.2.1', '192.0.2.2', '2001:db8::1'])
})

test('an IPv4-mapped IPv6 address in any spelling is counted as its IPv4 address, not as the one /64 all of them share', () => {
  for (const mapped of ['::ffff:203.0.113.7', '::FFFF:203.0.113.7', '0:0:0:0:0:ffff:203.0.113.7', '::ffff:cb00:7107']) {
    assert.equal(addressKey(mapped, 64), '203.0.113.7', mapped)
  }
  assert.notEqual(addressKey('::ffff:cb00:7108', 64), addressKey('::ffff:cb00:7107', 64))
})
