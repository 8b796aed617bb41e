import { test } from 'node:test'
import assert from 'node:assert/strict'
import { dirname, join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { start } from '../../src/main.js'
import { baseConfig, writeConfig } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'
import { countByPrefix, deleteByPrefix, requireRedis, uniquePrefix } from '../helpers/redis.js'
import { startUpstream } from '../helpers/upstream.js'

/**
 * gateway_limits_store_up across a reload, with start() in-process. The registry lives for the
 * whole process while the store belongs to a config: the gauge must say how the running config's
 * store is, not how a replaced store last was.
 */
test('a reload to a Redis store that answers sets gateway_limits_store_up back to 1', async (t) => {
  const url = await requireRedis(t)
  if (!url) return
  const up = await startUpstream()
  const prefix = uniquePrefix('limits-metrics')
  const metricsPort = await freePort()
  const deadPort = await freePort()
  t.after(async () => {
    await up.close()
    await deleteByPrefix(url, prefix)
  })
  const path = writeConfig({})
  const logging = { level: 'error', events: join(dirname(path), 'events.log'), access: false }
  const config = (redisUrl: string) =>
    baseConfig({
      logging,
      metrics: { enabled: true, host: '127.0.0.1', port: metricsPort },
      upstreams: [{ id: 'u', url: up.url }],
      routes: [{ id: 'open', path: '/a/**', methods: ['GET'], upstream: 'u', auth: 'public', limits: ['per-ip'] }],
      limits: {
        store: { type: 'redis', redis: { url: redisUrl, keyPrefix: prefix, connectTimeoutMs: 500 } },
        policies: [{ id: 'per-ip', key: ['ip'], rate: { limit: 1000, periodSec: 1 } }],
      },
    })
  // A Redis URL nothing listens on: the store fails, the local fallback answers.
  writeFileSync(path, JSON.stringify(config(`redis://127.0.0.1:${deadPort}`)))
  const running = await start({ configPath: path })
  t.after(() => running.stop())
  const gw = running.urls[0]
  const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()

  assert.equal((await fetch(gw + '/a/1')).status, 200)
  assert.match(await scrape(), /^gateway_limits_store_up 0$/m)

  // The operator fixes the URL: the new store answers from its first request on.
  writeFileSync(path, JSON.stringify(config(url)))
  assert.equal(await running.reload(), true)
  const res = await fetch(gw + '/a/2')
  assert.equal(res.status, 200)
  assert.equal(await countByPrefix(url, prefix), 1, 'counted in Redis')
  assert.match(await scrape(), /^gateway_limits_store_up 1$/m)
})
