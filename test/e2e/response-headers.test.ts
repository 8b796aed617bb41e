import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { send } from '../helpers/limits.js'

/** The upstream headers that name its server software stay with the gateway, unless the config says otherwise. */

let upstream: Server
let url = ''
const started: StartedGateway[] = []

before(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(200, { server: 'Apache/2.4.1 (Unix)', 'x-powered-by': 'PHP/5.6.40', 'X-AspNet-Version': '4.0.30319', 'x-kept': 'yes', 'content-type': 'text/plain' }).end('ok')
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})

after(async () => {
  await Promise.all(started.map((g) => g.stop()))
  upstream?.closeAllConnections()
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()))
})

async function gateway(extra: Record<string, unknown> = {}): Promise<StartedGateway> {
  const gw = await startGateway(
    baseConfig({ upstreams: [{ id: 'u', url }], routes: [{ path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'public' }], ...extra }),
  )
  started.push(gw)
  return gw
}

test('by default the upstream headers naming its server software are not relayed; the rest are', async () => {
  const r = await send((await gateway()).url, '/p/x')
  assert.equal(r.status, 200)
  assert.equal(r.headers.server, undefined)
  assert.equal(r.headers['x-powered-by'], undefined)
  assert.equal(r.headers['x-aspnet-version'], undefined)
  assert.equal(r.headers['x-kept'], 'yes')
})

test('responses.stripHeaders decides: [] relays them all, a list strips what it names in any case', async () => {
  const all = await send((await gateway({ responses: { stripHeaders: [] } })).url, '/p/x')
  assert.equal(all.headers.server, 'Apache/2.4.1 (Unix)')
  assert.equal(all.headers['x-powered-by'], 'PHP/5.6.40')
  const named = await send((await gateway({ responses: { stripHeaders: ['X-Kept'] } })).url, '/p/x')
  assert.equal(named.headers['x-kept'], undefined)
  assert.equal(named.headers.server, 'Apache/2.4.1 (Unix)')
})
