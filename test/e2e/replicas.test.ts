import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { send } from '../helpers/limits.js'

/**
 * An upstream with replicas: requests spread over every target, and a request without a body whose
 * target refuses the connection is sent to the next one instead of failing.
 */

interface Replica {
  readonly url: string
  readonly paths: string[]
  /** What its /healthz answers (200 by default). */
  health: number
  close(): Promise<void>
}

async function startReplica(name: string): Promise<Replica> {
  const paths: string[] = []
  const replica = { health: 200 } as Replica
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(replica.health).end()
      return
    }
    paths.push(req.url!)
    req.resume()
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ replica: name })))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return Object.assign(replica, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    paths,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  })
}

/** A port that refuses connections: a server opened and closed again. */
async function refusingUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((r) => server.close(() => r()))
  return `http://127.0.0.1:${port}`
}

describe('an upstream with replicas', () => {
  let a: Replica
  let b: Replica
  let c: Replica
  let gw: StartedGateway

  before(async () => {
    ;[a, b, c] = await Promise.all([startReplica('a'), startReplica('b'), startReplica('c')])
    const down = await refusingUrl()
    gw = await startGateway(
      baseConfig({
        upstreams: [
          { id: 'spread', url: `${a.url}/v1`, replicas: [`${b.url}/v1`, `${c.url}/v1/`] },
          // The first target is down: its share of the requests must still be answered.
          { id: 'failover', url: down, replicas: [a.url, b.url] },
        ],
        routes: [
          { id: 'spread', path: '/spread/**', methods: ['GET'], upstream: 'spread', auth: 'public' },
          { id: 'failover', path: '/failover/**', methods: ['GET', 'POST'], upstream: 'failover', auth: 'public' },
        ],
      }),
    )
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([a?.close(), b?.close(), c?.close()])
  })

  test('requests are spread over url and every replica, each with the path prefix', async () => {
    const answered = new Set<unknown>()
    for (let i = 0; i < 30; i++) {
      const r = await send(gw.url, `/spread/item-${i}`)
      assert.equal(r.status, 200)
      answered.add(r.body.replica)
    }
    assert.deepEqual([...answered].sort(), ['a', 'b', 'c'])
    for (const replica of [a, b, c]) assert.ok(replica.paths.some((p) => p.startsWith('/v1/spread/item-')), replica.url)
  })

  test('a GET whose target refuses the connection is answered by another target', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await send(gw.url, `/failover/get-${i}`)
      assert.equal(r.status, 200, `request ${i}: ${JSON.stringify(r.body)}`)
    }
  })

  test('a request with a body is not sent twice: when its target is down it gets the usual 502', async () => {
    const statuses = new Set<number>()
    for (let i = 0; i < 30; i++) {
      const r = await send(gw.url, `/failover/post-${i}`, { method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': '0' } })
      statuses.add(r.status)
      if (r.status !== 200) {
        assert.equal(r.status, 502)
        assert.equal(r.body.code, 'ERR_FORWARD_UNAVAILABLE')
      }
    }
    assert.ok(statuses.has(200), 'the live targets answered some')
  })

  test('check-config refuses a replica with another scheme or path than url', async () => {
    const file = writeConfig(
      baseConfig({
        upstreams: [{ id: 'u', url: 'http://127.0.0.1:3000/v1', replicas: ['http://127.0.0.1:3001/v2', 'https://127.0.0.1:3002/v1'] }],
        routes: [{ path: '/x', upstream: 'u', auth: 'public' }],
      }),
    )
    const r = await promisify(execFile)(process.execPath, [CLI, 'check-config', file]).catch((err: { code: number; stderr: string }) => err)
    assert.equal((r as { code: number }).code, 1)
    const stderr = (r as { stderr: string }).stderr
    assert.match(stderr, /\/upstreams\/0\/replicas\/0\s.*must have the path of url \("\/v1"\)/)
    assert.match(stderr, /\/upstreams\/0\/replicas\/1\s.*must use the scheme of url \(http\)/)
  })
})

describe('health checks of an upstream with replicas', () => {
  let a: Replica
  let b: Replica
  let gw: StartedGateway

  before(async () => {
    ;[a, b] = await Promise.all([startReplica('a'), startReplica('b')])
    gw = await startGateway(
      baseConfig({
        upstreams: [{ id: 'checked', url: a.url, replicas: [b.url], healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 1000, unhealthyAfter: 2, healthyAfter: 2 } }],
        routes: [{ id: 'checked', path: '/checked/**', methods: ['GET'], upstream: 'checked', auth: 'public' }],
        metrics: { enabled: true, port: 0 },
      }),
    )
  })

  after(async () => {
    await gw?.stop()
    await Promise.all([a?.close(), b?.close()])
  })

  async function answeredBy(n: number): Promise<Set<unknown>> {
    const seen = new Set<unknown>()
    for (let i = 0; i < n; i++) {
      const r = await send(gw.url, `/checked/${i}`)
      assert.equal(r.status, 200)
      seen.add(r.body.replica)
    }
    return seen
  }

  test('a target failing its probes takes no requests until it passes them again, with an event and a metric each way', async () => {
    assert.deepEqual([...(await answeredBy(10))].sort(), ['a', 'b'])
    b.health = 503
    const down = await gw.waitFor((l) => l.event === 'upstream.unhealthy')
    assert.equal(down.upstream, 'checked')
    assert.equal(down.target, b.url)
    assert.equal(down.reason, 'status_503')
    assert.deepEqual([...(await answeredBy(20))], ['a'], 'the unhealthy target is out of the rotation')
    const metricsUrl = String(gw.lines.find((l) => l.msg === 'listening')!.metrics)
    assert.match(await (await fetch(metricsUrl)).text(), new RegExp(`^gateway_upstream_target_healthy\\{upstream="checked",target="${b.url}"\\} 0$`, 'm'))

    b.health = 200
    const up = await gw.waitFor((l) => l.event === 'upstream.healthy')
    assert.equal(up.target, b.url)
    assert.deepEqual([...(await answeredBy(10))].sort(), ['a', 'b'], 'back in the rotation')
  })

  test('when every target fails its probes, every target takes requests again', async () => {
    a.health = 500
    b.health = 500
    await gw.waitFor((l) => l.event === 'upstream.unhealthy' && l.target === a.url)
    await gw.waitFor((l) => l.event === 'upstream.unhealthy' && l.target === b.url && gw.lines.filter((x) => x.event === 'upstream.unhealthy' && x.target === b.url).length === 2)
    assert.deepEqual([...(await answeredBy(10))].sort(), ['a', 'b'])
    a.health = 200
    b.health = 200
  })
})
