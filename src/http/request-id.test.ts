import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveRequestId, resolveTraceparent } from './request-id.js'

test('a well-formed client request id is kept; a malformed or missing one is replaced', () => {
  assert.equal(resolveRequestId('abc-123_def.456'), 'abc-123_def.456')
  for (const bad of [undefined, '', 'short', 'has space in it', 'a'.repeat(129), 'inject\r\nx: y', ['a'.repeat(10), 'b'.repeat(10)]]) {
    const id = resolveRequestId(bad as string | undefined)
    assert.match(id, /^[0-9a-f-]{36}$/)
  }
})

test('a valid traceparent keeps its trace id and flags with a new parent id', () => {
  const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const [tp, traceId] = resolveTraceparent(incoming)
  assert.equal(traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  assert.match(tp, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/)
  assert.notEqual(tp, incoming)
})

test('an invalid traceparent starts a new trace', () => {
  for (const bad of [undefined, 'garbage', '00-' + '0'.repeat(32) + '-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-' + '0'.repeat(16) + '-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01']) {
    const [tp, traceId] = resolveTraceparent(bad)
    assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    assert.equal(tp.slice(3, 35), traceId)
  }
})

test('ids drawn from the random pool do not repeat across many requests', () => {
  const seen = new Set<string>()
  for (let i = 0; i < 2000; i++) seen.add(resolveTraceparent(undefined)[1])
  assert.equal(seen.size, 2000)
})
