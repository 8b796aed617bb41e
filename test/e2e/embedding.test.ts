import { test } from 'node:test'
import assert from 'node:assert/strict'
import { dirname, join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { start } from '../../src/main.js'
import { baseConfig, writeConfig } from '../helpers/gateway.js'
import { startHeldJwks, startKeyServer } from '../helpers/keys.js'
import { startUpstream } from '../helpers/upstream.js'

/**
 * `start()` used in-process, as an embedding program would (the CLI exits right after stop(), so
 * there a late reload cannot matter). Logs go to files in the config's folder, not to the test's
 * own stdout.
 */
test('a reload still waiting for its keys when stop() begins is dropped, not swapped in after the shutdown', async (t) => {
  const up = await startUpstream()
  const ks = await startKeyServer()
  const jwks = await startHeldJwks(ks)
  t.after(async () => {
    jwks.close()
    await ks.close()
    await up.close()
  })
  const path = writeConfig({})
  const logging = { level: 'error', events: join(dirname(path), 'events.log'), access: false }
  const routes = (p: string, extra: Record<string, unknown> = {}) =>
    baseConfig({ logging, upstreams: [{ id: 'u', url: up.url }], routes: [{ path: p, methods: ['GET'], upstream: 'u', auth: 'public' }], ...extra })
  writeFileSync(path, JSON.stringify(routes('/a/**')))
  const running = await start({ configPath: path })
  const url = running.urls[0]
  assert.equal((await fetch(url + '/a/1')).status, 200)

  writeFileSync(path, JSON.stringify(routes('/b/**', { issuers: [{ id: 'slow', issuer: ks.issuer, jwksUri: jwks.url, audiences: ['api://test'] }] })))
  const reloaded = running.reload()
  await jwks.asked
  const stopped = running.stop()
  jwks.release()
  assert.equal(await reloaded, false, 'the reload that finished during the shutdown did not take over')
  await stopped
})
