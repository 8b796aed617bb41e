import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isVerifyError, requireScopes } from '@portcullis/verify'
import { authenticate, sendProblem, withVerifier } from '@portcullis/verify/node-http'
import { adapterContract, describeIdentity, listen, send, stubVerifier } from './helpers/adapter-contract.js'

adapterContract('node:http withVerifier', (verifier) => {
  const counter = { n: 0 }
  return listen(
    withVerifier(
      verifier,
      (_req, res, identity) => {
        counter.n++
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(describeIdentity(identity)))
      },
      { scopes: ['orders:read'] },
    ),
    counter,
  )
})

adapterContract('node:http authenticate + sendProblem', (verifier) => {
  const counter = { n: 0 }
  return listen(async (req, res) => {
    try {
      const identity = await authenticate(verifier, req, { scopes: ['orders:read'] })
      counter.n++
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(describeIdentity(identity)))
    } catch (err) {
      if (!isVerifyError(err)) throw err
      sendProblem(res, err)
    }
  }, counter)
})

test('withVerifier answers a VerifyError thrown by the handler, and any other error with a bare 500', async (t) => {
  const verifier = stubVerifier(['a'])
  const seen: unknown[] = []
  const app = await listen(
    withVerifier(
      verifier,
      (req, res, identity) => {
        if (req.url === '/admin') requireScopes(identity, 'admin')
        throw new Error('secret internals')
      },
      { onError: (err) => seen.push(err) },
    ),
    { n: 0 },
  )
  t.after(() => app.close())
  const admin = await send(app.url + '/admin', { authorization: 'Bearer x' })
  assert.equal(admin.status, 403)
  assert.equal(admin.body.code, 'ERR_AUTHZ_INSUFFICIENT_SCOPE')
  assert.equal(admin.headers['www-authenticate'], 'Bearer realm="r", error="insufficient_scope", scope="admin"')
  const boom = await send(app.url + '/boom', { authorization: 'Bearer x' })
  assert.equal(boom.status, 500)
  assert.equal(JSON.stringify(boom.body).includes('secret internals'), false)
  assert.equal(seen.length, 1)
})
