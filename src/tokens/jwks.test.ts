import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createJwksEndpoint } from './jwks.js'
import { createKeySchedule } from './key-schedule.js'
import { newKeySet, parseKeySet, rotateKeySet, serializeKeySet } from './key-set.js'

const T0 = Date.parse('2030-01-01T00:00:00Z')

function serve(endpoint: ReturnType<typeof createJwksEndpoint>, method = 'GET') {
  const out: { status: number; headers: Record<string, string | number>; body: string } = { status: 0, headers: {}, body: '' }
  const res = {
    writeHead(status: number, headers: Record<string, string | number>) {
      out.status = status
      out.headers = headers
      return res
    },
    end(body?: Buffer | string) {
      out.body = body === undefined ? '' : body.toString()
      return res
    },
  }
  endpoint.serve({ method, headers: {} } as IncomingMessage, res as unknown as ServerResponse)
  return out
}

test('max-age is jwksMaxAgeSec, cut so that no cache keeps a key past its retirement; the body changes at the retirement', () => {
  const first = newKeySet('EdDSA', T0 - 1000)
  const { set, added } = rotateKeySet(first, { overlapSec: 30, publishAheadSec: 0, nowMs: T0 })
  let now = T0
  const endpoint = createJwksEndpoint({ path: '/jwks', maxAgeSec: 60, realm: 'r', schedule: createKeySchedule(parseKeySet(serializeKeySet(set)).keys), now: () => now })
  let r = serve(endpoint)
  assert.equal(r.status, 200)
  assert.equal(r.headers['cache-control'], 'public, max-age=30')
  assert.equal((JSON.parse(r.body) as { keys: unknown[] }).keys.length, 2)
  assert.equal(r.headers['content-length'], Buffer.byteLength(r.body))
  now += 29_500
  assert.equal(serve(endpoint).headers['cache-control'], 'public, max-age=0')
  now += 500
  r = serve(endpoint)
  assert.deepEqual(
    (JSON.parse(r.body) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid),
    [added.kid],
  )
  assert.equal(r.headers['cache-control'], 'public, max-age=60')
})

test('HEAD gets the headers without a body; other methods get 405 problem+json with Allow', () => {
  const endpoint = createJwksEndpoint({ path: '/jwks', maxAgeSec: 60, realm: 'r', schedule: createKeySchedule(parseKeySet(serializeKeySet(newKeySet('EdDSA', T0))).keys), now: () => T0 })
  const head = serve(endpoint, 'HEAD')
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
  assert.ok(Number(head.headers['content-length']) > 0)
  const post = serve(endpoint, 'POST')
  assert.equal(post.status, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
  assert.equal((JSON.parse(post.body) as { code: string }).code, 'ERR_ROUTE_METHOD_NOT_ALLOWED')
})
