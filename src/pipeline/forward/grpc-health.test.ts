import { test } from 'node:test'
import assert from 'node:assert/strict'
import { healthCheckRequest, servingStatus } from './grpc-health.js'

test('a health check request is one uncompressed gRPC message holding the service name', () => {
  assert.deepEqual(healthCheckRequest(''), Buffer.from([0, 0, 0, 0, 0]))
  assert.deepEqual(healthCheckRequest('a.B'), Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x2e, 0x42]))
  // A name of 200 bytes has a two-byte length.
  const long = healthCheckRequest('x'.repeat(200))
  assert.deepEqual([...long.subarray(0, 8)], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01])
})

test("the answer's serving status is read from its message; anything else is no answer", () => {
  const frame = (...message: number[]) => Buffer.from([0, 0, 0, 0, message.length, ...message])
  assert.equal(servingStatus(frame(0x08, 1)), 1)
  assert.equal(servingStatus(frame(0x08, 2)), 2)
  assert.equal(servingStatus(frame()), 0, 'proto3 leaves out UNKNOWN')
  // Unknown fields (a string, a fixed64) are skipped.
  assert.equal(servingStatus(frame(0x12, 2, 0x61, 0x62, 0x08, 1, 0x19, 1, 2, 3, 4, 5, 6, 7, 8)), 1)
  assert.equal(servingStatus(Buffer.from([1, 0, 0, 0, 2, 0x08, 1])), undefined, 'compressed')
  assert.equal(servingStatus(Buffer.from([0, 0, 0, 0, 3, 0x08, 1])), undefined, 'length that does not match')
  assert.equal(servingStatus(frame(0x08)), undefined, 'truncated varint')
  assert.equal(servingStatus(frame(0x0b, 1)), undefined, 'a wire type protobuf no longer has')
})
