import { test } from 'node:test'
import assert from 'node:assert/strict'
import { grpcRefusalHeaders, grpcStatusOf, isGrpcRequest, percentEncoded } from './grpc.js'
import { toProblem } from './problem.js'
import { GatewayError } from './gateway-error.js'

test('a gRPC call is told by its content type', () => {
  for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'Application/GRPC', 'application/grpc; charset=x']) assert.equal(isGrpcRequest(ct), true, ct)
  for (const ct of [undefined, '', 'application/json', 'application/grpc-web', 'application/grpc-web+proto', 'application/grpcx']) assert.equal(isGrpcRequest(ct), false, String(ct))
})

test('each refusal status has the gRPC status that says the same', () => {
  const expected: Record<number, number> = { 400: 3, 401: 16, 403: 7, 404: 12, 405: 12, 501: 12, 408: 4, 504: 4, 413: 8, 429: 8, 431: 8, 500: 13, 502: 14, 503: 14, 418: 2 }
  for (const [http, grpc] of Object.entries(expected)) assert.equal(grpcStatusOf(Number(http)), grpc, http)
})

test("a gRPC refusal's head keeps the problem's fields but its body's, and names the stable code, percent-encoded", () => {
  const problem = toProblem(new GatewayError('ERR_LIMITS_EXCEEDED', { headers: { 'retry-after': '7' } }), 'req-1', 'portcullis')
  const headers = grpcRefusalHeaders(problem, 'ERR_LIMITS_EXCEEDED')
  assert.equal(headers['content-type'], 'application/grpc')
  assert.equal(headers['grpc-status'], '8')
  assert.equal(headers['grpc-message'], 'ERR_LIMITS_EXCEEDED: Too many requests')
  assert.equal(headers['retry-after'], '7')
  assert.equal(headers['x-request-id'], 'req-1')
  assert.equal(headers['content-length'], undefined)
  const challenge = grpcRefusalHeaders(toProblem(new GatewayError('ERR_AUTHN_MISSING'), 'req-2', 'a "realm"'), 'ERR_AUTHN_MISSING')
  assert.equal(challenge['grpc-status'], '16')
  assert.match(challenge['www-authenticate'], /^Bearer realm=/)
})

test('grpc-message percent-encodes what is not printable ASCII, and %', () => {
  assert.equal(percentEncoded('plain text: ok'), 'plain text: ok')
  assert.equal(percentEncoded('100% é\n'), '100%25 %C3%A9%0A')
})
