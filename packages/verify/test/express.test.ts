import { test } from 'node:test'
import assert from 'node:assert/strict'
import express from 'express'
import { createVerifier } from '@portcullis/verify'
import { requireScopesMiddleware, verifyMiddleware } from '@portcullis/verify/express'
import { adapterContract, AUDIENCE, describeIdentity, listen, REALM, send, TYP } from './helpers/adapter-contract.js'
import { startJwksServer } from './helpers/jwks-server.js'

adapterContract('Express verifyMiddleware', (verifier) => {
  const counter = { n: 0 }
  const app = express()
  app.get('/orders', verifyMiddleware(verifier, { scopes: ['orders:read'] }), (req, res) => {
    counter.n++
    res.json(describeIdentity(req.identity!))
  })
  return listen(app, counter)
})

adapterContract('Express verifyMiddleware on a mounted router + requireScopesMiddleware', (verifier) => {
  const counter = { n: 0 }
  const app = express()
  const router = express.Router()
  router.use(verifyMiddleware(verifier))
  router.get('/', requireScopesMiddleware(['orders:read'], { realm: REALM }), (req, res) => {
    counter.n++
    res.json(describeIdentity(req.identity!))
  })
  app.use('/orders', router)
  return listen(app, counter)
})

test('requireScopesMiddleware without verifyMiddleware in front refuses with 401 rather than letting the request through', async (t) => {
  const app = express()
  let handled = 0
  app.get('/admin', requireScopesMiddleware(['admin']), (_req, res) => {
    handled++
    res.end()
  })
  const started = await listen(app, { n: 0 })
  t.after(() => started.close())
  const res = await send(started.url + '/admin')
  assert.equal(res.status, 401)
  assert.equal(res.body.code, 'ERR_AUTHN_MISSING')
  assert.equal(handled, 0)
})

test('Express: an unreachable issuer gets 503 ERR_AUTHN_IDP_UNAVAILABLE with Retry-After and no challenge', async (t) => {
  const js = await startJwksServer()
  js.mode = 'down'
  const app = express()
  app.get('/orders', verifyMiddleware(createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })), (_req, res) => res.end())
  const started = await listen(app, { n: 0 })
  t.after(async () => {
    await started.close()
    await js.close()
  })
  const res = await send(started.url + '/orders', { authorization: `Bearer ${js.sign({ audience: AUDIENCE, typ: TYP })}` })
  assert.equal(res.status, 503)
  assert.equal(res.body.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
  assert.match(String(res.headers['retry-after']), /^\d+$/)
  assert.equal(res.headers['www-authenticate'], undefined)
})
