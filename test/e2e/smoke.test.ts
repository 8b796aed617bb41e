import { test } from 'node:test'
import assert from 'node:assert/strict'
import { baseConfig, startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

test('a public route forwards to its upstream and an unknown path gets 404 problem+json without touching it', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(
    baseConfig({
      upstreams: [{ id: 'demo', url: up.url }],
      routes: [{ path: '/public/**', methods: ['GET'], upstream: 'demo', auth: 'public' }],
    }),
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const ok = await fetch(gw.url + '/public/hello?x=1')
  assert.equal(ok.status, 200)
  assert.deepEqual(await ok.json(), { ok: true, url: '/public/hello?x=1' })
  const nf = await fetch(gw.url + '/nowhere')
  assert.equal(nf.status, 404)
  assert.equal(nf.headers.get('content-type'), 'application/problem+json')
  const body = (await nf.json()) as Record<string, unknown>
  assert.equal(body.code, 'ERR_ROUTE_NOT_FOUND')
  assert.equal(up.received.length, 1)
})
