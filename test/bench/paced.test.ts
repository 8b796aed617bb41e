import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { drivePaced, startPacedDriver } from '../../bench/paced.js'

/** The equal-load phase's driver: requests start on a schedule, and a request's latency counts
 *  from its scheduled start, so waiting for a busy connection is part of it. */

test('a paced run sends every scheduled request and counts the wait for a busy connection in its latency', async (t) => {
  const seen: string[] = []
  // Each answer takes 40 ms, one connection: 10 requests scheduled 5 ms apart queue behind each
  // other. The 10th starts about 9 × 40 - 9 × 5 ms after its slot, so its latency is several
  // times the first one's. A driver that timed from the actual send would see ~40 ms each.
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization ?? '')
    setTimeout(() => res.writeHead(req.url === '/ok' ? 200 : 404).end('x'), 40)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  let n = 0
  const run = await drivePaced(url, { path: '/ok', authorization: () => `Bearer t${n++}` }, { rate: 200, durationSec: 0.05, connections: 1 })

  assert.equal(run.responses, 10)
  assert.deepEqual(run.statusCodes, { 200: 10 })
  assert.equal(run.non2xx, 0)
  assert.equal(run.errors, 0)
  assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `Bearer t${i}`))
  const first = run.latencies[0]
  const last = run.latencies[run.latencies.length - 1]
  assert.ok(first >= 39, `first latency ${first} ms`)
  // In order of completion (one connection): each waited for all before it.
  assert.ok(last > 4 * first, `last latency ${last} ms against first ${first} ms`)
})

test('a paced run counts answers that are not 2xx and requests that fail', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/gone') return req.socket.destroy()
    res.writeHead(503).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const refused = await drivePaced(url, { path: '/busy' }, { rate: 100, durationSec: 0.05, connections: 2 })
  assert.equal(refused.non2xx, 5)
  assert.deepEqual(refused.statusCodes, { 503: 5 })
  const cut = await drivePaced(url, { path: '/gone' }, { rate: 100, durationSec: 0.05, connections: 2 })
  assert.equal(cut.errors, 5)
  assert.equal(cut.responses, 0)
})

test('the driver process runs jobs one after another with the spec\'s tokens, and reports its own event-loop lag', async (t) => {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization ?? '')
    res.writeHead(200).end('x')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const driver = await startPacedDriver()
  t.after(() => driver.close())
  let n = 0
  const tokens = ['Bearer a', 'Bearer b', 'Bearer c']
  const first = await driver.run(url, { path: '/', authorization: () => tokens[n++ % 3] }, { rate: 200, durationSec: 0.05, connections: 1 })
  assert.equal(first.responses, 10)
  assert.deepEqual(seen, ['Bearer a', 'Bearer b', 'Bearer c', 'Bearer a', 'Bearer b', 'Bearer c', 'Bearer a', 'Bearer b', 'Bearer c', 'Bearer a'])
  assert.equal(typeof first.driverLagMaxMs, 'number')
  assert.ok(first.driverLagMaxMs >= 0)
  const second = await driver.run(url, { path: '/' }, { rate: 100, durationSec: 0.05, connections: 2 })
  assert.equal(second.responses, 5)
  assert.equal(seen.slice(10).join(), ',,,,', 'no Authorization when the spec has none')
})
