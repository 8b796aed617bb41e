import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Identity } from '@portcullis/verify'
import { fastifyVerify, verifyPreHandler } from '@portcullis/verify/fastify'
import { adapterContract, describeIdentity, send, stubVerifier, type StartedApp } from './helpers/adapter-contract.js'

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null
  }
}

async function listen(app: FastifyInstance, counter: { n: number }): Promise<StartedApp> {
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, handled: () => counter.n, close: () => app.close() }
}

adapterContract('Fastify verifyPreHandler', (verifier) => {
  const counter = { n: 0 }
  const app = Fastify()
  app.get('/orders', { preHandler: verifyPreHandler(verifier, { scopes: ['orders:read'] }) }, async (request) => {
    counter.n++
    return describeIdentity(request.identity!)
  })
  return listen(app, counter)
})

adapterContract('Fastify fastifyVerify plugin with route config scopes', (verifier) => {
  const counter = { n: 0 }
  const app = Fastify()
  app.register(async (api) => {
    await api.register(fastifyVerify, { verifier })
    api.get('/orders', { config: { scopes: ['orders:read'] } }, async (request) => {
      counter.n++
      return describeIdentity(request.identity!)
    })
  })
  return listen(app, counter)
})

test('the Fastify plugin protects only the context it is registered in', async (t) => {
  const verifier = stubVerifier()
  const app = Fastify()
  app.get('/healthz', async () => ({ ok: true }))
  app.register(async (api) => {
    await api.register(fastifyVerify, { verifier, scopes: ['orders:read'] })
    api.get('/orders', async () => ({ reached: true }))
  })
  const started = await listen(app, { n: 0 })
  t.after(() => started.close())
  assert.equal((await send(started.url + '/healthz')).status, 200)
  const res = await send(started.url + '/orders', { authorization: 'Bearer x' })
  assert.equal(res.status, 403)
  assert.equal(res.body.code, 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
})

test('registering the Fastify plugin without a verifier fails at startup', async () => {
  const app = Fastify()
  app.register(fastifyVerify, {} as never)
  await assert.rejects(async () => {
    await app.ready()
  }, /needs \{ verifier \}/)
  await app.close().catch(() => {})
})

test('route config scopes that are not an array of scope tokens fail the request instead of leaving the route open', async (t) => {
  const verifier = stubVerifier(['orders:read'])
  const app = Fastify({ logger: false })
  let reached = 0
  app.register(async (api) => {
    await api.register(fastifyVerify, { verifier })
    api.get('/typo', { config: { scopes: 'admin' } }, async () => ({ reached: ++reached }))
    api.get('/ok', { config: { scopes: ['orders:read'] } }, async () => ({ reached: ++reached }))
  })
  const started = await listen(app, { n: 0 })
  t.after(() => started.close())
  assert.equal((await send(started.url + '/typo', { authorization: 'Bearer x' })).status, 500)
  assert.equal(reached, 0, 'the handler of the misconfigured route never ran')
  assert.equal((await send(started.url + '/ok', { authorization: 'Bearer x' })).status, 200)
  assert.equal((await send(started.url + '/ok', { authorization: 'Bearer x' })).status, 200, 'merged scopes are reused')
})
