import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { RequestContext } from '../pipeline/stage.js'
import { createAccessLog, millisText } from './access-log.js'

function capture() {
  const lines: string[] = []
  return { lines, dest: { write: (l: string) => (lines.push(l), true) } }
}

const ctx = (over: Partial<RequestContext> = {}) =>
  ({
    id: 'req-1',
    traceId: 'a'.repeat(32),
    method: 'GET',
    req: { httpVersion: '1.1' },
    path: '/orders/1',
    route: { id: 'orders' },
    status: 200,
    res: { statusCode: 200 },
    startedAt: performance.now(),
    upstreamMs: 1.5,
    clientIp: '127.0.0.1',
    identity: { subject: 'alice', clientId: 'app' },
    ...over,
  }) as unknown as RequestContext

test('one JSON line per request with the fields an investigator needs', () => {
  const { lines, dest } = capture()
  createAccessLog(dest)(ctx())
  assert.equal(lines.length, 1)
  assert.ok(lines[0].endsWith('\n'))
  const l = JSON.parse(lines[0]) as Record<string, unknown>
  assert.equal(l.name, 'access')
  assert.equal(l.level, 30)
  assert.match(String(l.time), /^\d{4}-\d\d-\d\dT/)
  assert.deepEqual(
    { requestId: l.requestId, method: l.method, httpVersion: l.httpVersion, path: l.path, route: l.route, status: l.status, upstreamMs: l.upstreamMs, clientIp: l.clientIp, subject: l.subject, clientId: l.clientId },
    { requestId: 'req-1', method: 'GET', httpVersion: '1.1', path: '/orders/1', route: 'orders', status: 200, upstreamMs: 1.5, clientIp: '127.0.0.1', subject: 'alice', clientId: 'app' },
  )
  assert.equal(typeof l.durationMs, 'number')
})

test('values from a token cannot break or forge the line', () => {
  const { lines, dest } = capture()
  createAccessLog(dest)(ctx({ identity: { subject: 'x","status":200}\n{"forged":"1', clientId: undefined } as never, route: undefined, upstreamMs: undefined }))
  assert.equal(lines[0].split('\n').length, 2, 'exactly one line')
  const l = JSON.parse(lines[0]) as Record<string, unknown>
  assert.equal(l.subject, 'x","status":200}\n{"forged":"1')
  assert.equal(l.clientId, null)
  assert.equal(l.route, null)
  assert.equal(l.upstreamMs, null)
})

test('control characters, quotes, backslashes and non-ASCII in any field are escaped', () => {
  const { lines, dest } = capture()
  for (const subject of ['a"b', 'a\\b', 'tab\there', 'é', '\u2028', '']) {
    createAccessLog(dest)(ctx({ identity: { subject, clientId: 'x' } as never }))
    assert.equal(JSON.parse(lines.at(-1)!).subject, subject)
  }
})

test('a request refused before normalization is logged with the path it sent, as in its event (no query, no user info)', () => {
  const { lines, dest } = capture()
  const log = createAccessLog(dest)
  log(ctx({ path: '', req: { url: '/a/%2e%2e/etc?access_token=secret' } as never, route: undefined, status: 400 }))
  log(ctx({ path: '', req: { url: 'http://alice:s3cret@example.com/x' } as never, route: undefined, status: 400 }))
  assert.equal(JSON.parse(lines[0]).path, '/a/%2e%2e/etc')
  assert.equal(JSON.parse(lines[1]).path, 'http://example.com/x')
  assert.ok(!lines.join('').includes('secret') && !lines.join('').includes('s3cret'))
})

test('durations are written as String(Math.round(ms * 100) / 100) would write them', () => {
  const plain = (ms: number) => String(Math.round(ms * 100) / 100)
  // Every hundredth of a millisecond to 20 s, each also a little off the hundredth.
  for (let c = 0; c <= 2_000_000; c++) {
    for (const ms of [c / 100, c / 100 + 0.004, c / 100 - 0.004]) {
      if (millisText(ms) !== plain(ms)) assert.fail(`${ms}: ${millisText(ms)} against ${plain(ms)}`)
    }
  }
  for (const ms of [0.005, 0.015, 1.005, 123456.789, 2 ** 31 / 100 - 0.01, 2 ** 31 / 100, 1e12, -1, -0.004, Number.NaN, Infinity]) {
    assert.equal(millisText(ms), plain(ms), String(ms))
  }
})
