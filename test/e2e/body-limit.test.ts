import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { baseConfig, startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { eventually } from '../helpers/limits.js'

function post(url: string, body: Buffer, chunked: boolean): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', reject)
    req.setTimeout(15_000, () => req.destroy(new Error('timed out')))
    if (chunked) {
      // Several chunks, so the limit is crossed mid-stream.
      for (let i = 0; i < body.length; i += 4096) req.write(body.subarray(i, i + 4096))
      req.end()
    } else req.end(body)
  })
}

test('request bodies over server.maxBodyBytes get 413 ERR_SANITIZE_TOO_LARGE, declared or chunked; smaller ones pass intact', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(
    baseConfig({
      server: { maxBodyBytes: 64 * 1024 },
      upstreams: [{ id: 'u', url: up.url }],
      routes: [{ path: '/upload', methods: ['POST'], upstream: 'u', auth: 'public' }],
    }),
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const small = Buffer.alloc(60 * 1024, 'a')
  const big = Buffer.alloc(200 * 1024, 'b')

  const declared = await post(gw.url + '/upload', big, false)
  assert.equal(declared.status, 413)
  assert.equal(JSON.parse(declared.body).code, 'ERR_SANITIZE_TOO_LARGE')
  assert.equal(up.received.length, 0, 'a declared oversized body never reaches the upstream')

  const chunked = await post(gw.url + '/upload', big, true)
  assert.equal(chunked.status, 413)
  assert.equal(JSON.parse(chunked.body).code, 'ERR_SANITIZE_TOO_LARGE')
  // The upstream records a request only once its body ended: a body cut off at the limit must
  // reach it as an aborted request, never as a shorter one that looks complete.
  assert.equal(up.received.length, 0, 'no complete request reached the upstream')

  for (const isChunked of [false, true]) {
    const countBefore: number = up.received.length
    const ok = await post(gw.url + '/upload', small, isChunked)
    assert.equal(ok.status, 200)
    assert.equal(up.received.length, countBefore + 1)
    assert.equal(up.received.at(-1)!.body, small.toString())
  }
  await eventually(async () => (gw.events().filter((e) => e.event === 'sanitize.too_large').length >= 2 ? true : undefined), 'two sanitize.too_large events')
  // Checked again after the later requests: a cut-off body that still ended cleanly upstream
  // could have been recorded after the first check.
  assert.deepEqual(
    up.received.map((r) => r.body.length),
    [small.length, small.length],
    'only the two small bodies ever reached the upstream complete',
  )
})
