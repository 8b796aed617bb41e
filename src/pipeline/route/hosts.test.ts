import { test } from 'node:test'
import assert from 'node:assert/strict'
import { canonicalHostName, HostTable, requestHostName, UNROUTABLE } from './hosts.js'

test('a request host is routed by its name: lowercase, without port or trailing dot', () => {
  assert.equal(requestHostName('api.example.com'), 'api.example.com')
  assert.equal(requestHostName('API.Example.COM'), 'api.example.com')
  assert.equal(requestHostName('api.example.com:8443'), 'api.example.com')
  assert.equal(requestHostName('api.example.com.'), 'api.example.com')
  assert.equal(requestHostName('api.example.com.:443'), 'api.example.com')
  assert.equal(requestHostName('127.0.0.1:8080'), '127.0.0.1')
  assert.equal(requestHostName('localhost'), 'localhost')
  assert.equal(requestHostName('[::1]:8080'), '[::1]')
  assert.equal(requestHostName('[2001:DB8::1]'), '[2001:db8::1]')
})

test('a host that is not a DNS name or IP address is unroutable; no host at all is not', () => {
  for (const bad of ['', ':80', 'api%2eexample.com', 'a_b.example.com', '.example.com', 'a..example.com', 'api.example.com..', '[::1', '[zz]', 'é.example.com']) {
    assert.equal(requestHostName(bad), UNROUTABLE, bad)
  }
  assert.equal(requestHostName(undefined), undefined)
})

test('configured names compare in the same form', () => {
  assert.equal(canonicalHostName('API.Example.com.'), 'api.example.com')
  assert.equal(canonicalHostName('*.Example.com'), '*.example.com')
})

test('an exact name wins over a wildcard, the longest wildcard over a shorter one, and anything else gets the default group', () => {
  const t = new HostTable('default')
  for (const [entry, group] of [
    ['*.example.com', 'wild'],
    ['api.example.com', 'api'],
    ['*.eu.example.com', 'wild-eu'],
    ['[::1]', 'v6'],
  ]) {
    assert.equal(t.groupFor(entry, () => group), group)
  }
  // A second route naming the same entry joins its group.
  assert.equal(t.groupFor('*.example.com', () => 'another'), 'wild')
  assert.equal(t.select('api.example.com'), 'api')
  assert.equal(t.select('www.example.com'), 'wild')
  assert.equal(t.select('a.b.example.com'), 'wild', 'a wildcard covers every name below it')
  assert.equal(t.select('shop.eu.example.com'), 'wild-eu')
  assert.equal(t.select('example.com'), 'default', 'a wildcard does not cover the name itself')
  assert.equal(t.select('eu.example.com'), 'wild')
  assert.equal(t.select('notexample.com'), 'default')
  assert.equal(t.select('[::1]'), 'v6')
  assert.equal(t.select(undefined), 'default', 'no Host (HTTP/1.0): the default group')
  assert.equal(t.select(UNROUTABLE), undefined, 'a Host that could be read as another name: no group')
})
