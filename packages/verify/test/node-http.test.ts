import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isVerifyError, requireScopes, type Identity } from '@portcullis/verify'
import { authenticate, sendProblem, withVerifier } from '@portcullis/verify/node-http'
import { adapterContract, send, type StartedApp } from './helpers/adapter-contract.js'

async function listen(listener: RequestListener, counter: { n: number }): Promise<StartedApp> {
  const server = createServer(listener)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handled: () => counter.n,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

const describeIdentity = (identity: Identity) => JSON.stringify({ subject: identity.subject, clientId: identity.clientId, scopes: [...identity.scopes] })

adapterContract('node:http withVerifier', (verifier) => {
  const counter = { n: 0 }
  return listen(
    withVerifier(
      verifier,
      (_req, res, identity) => {
        counter.n++
        res.writeHead(200, { 'content-type': 'application/json' }).end(describeIdentity(identity))
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
      res.writeHead(200, { 'content-type': 'application/json' }).end(describeIdentity(identity))
    } catch (err) {
      if (!isVerifyError(err)) throw err
      sendProblem(res, err)
    }
  }, counter)
})

test('withVerifier answers a VerifyError thrown by the handler, and any other error with a bare 500', async (t) => {
  const verifier = { issuer: 'x', realm: 'r', verify: async () => ({ scopes: new Set(['a']) }) as unknown as Identity, warmUp: async () => {} }
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
