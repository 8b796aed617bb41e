import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { gatewayTokenVerifier, isVerifyError, type Verifier } from '@portcullis/verify'
import { authenticate, sendProblem } from '@portcullis/verify/node-http'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { bearer, send, type Reply } from '../helpers/limits.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/**
 * Scopes as the gateway judges them are the scopes that travel on: in the identity header to an
 * upstream, and in the internal token a service verifies with @portcullis/verify. Both carry them
 * joined with spaces, so a scope that is not an RFC 6749 scope-token must refuse the token.
 */

const GATEWAY_ISS = 'https://gateway.test'
const AUD = 'api://shop'

describe('scopes through the gateway', () => {
  let ks: KeyServer
  let up: RecordingUpstream
  let gw: StartedGateway
  let service: Server
  let serviceUrl = ''
  /** Scopes the service's own verifier found in each internal token it received. */
  const serviceSaw: string[][] = []
  let verifier: Verifier | undefined

  before(async () => {
    ks = await startKeyServer({ audience: AUD })
    up = await startUpstream()
    // A service behind the gateway, verifying its internal tokens as a user writes one.
    service = createServer((req, res) => {
      verifier ??= gatewayTokenVerifier({ gatewayIssuer: GATEWAY_ISS, audience: 'svc', jwksUri: gw.url + '/.well-known/portcullis/jwks.json' })
      authenticate(verifier, req).then(
        (identity) => {
          serviceSaw.push([...identity.scopes])
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ scopes: [...identity.scopes] }))
        },
        (err: unknown) => (isVerifyError(err) ? sendProblem(res, err) : res.writeHead(500).end()),
      )
    })
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', r))
    serviceUrl = `http://127.0.0.1:${(service.address() as AddressInfo).port}`
    const configPath = writeConfig(
      baseConfig({
        issuers: [{ id: 'idp', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: [AUD] }],
        internalTokens: { issuer: GATEWAY_ISS, signingKeys: '${file:keys.json}' },
        upstreams: [
          { id: 'api', url: up.url },
          { id: 'svc', url: serviceUrl, audience: 'svc' },
        ],
        routes: [
          { id: 'basic', path: '/basic/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['basic'] } },
          { id: 'admin', path: '/admin/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['orders:admin'] } },
          { id: 'orders', path: '/orders/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['orders:read'] } },
          { id: 'svc', path: '/svc/**', methods: ['GET'], upstream: 'svc', auth: 'required', upstreamToken: 'internal', scopes: { allOf: ['basic'] } },
        ],
        // Several refused tokens come from one address on purpose; brute-force throttling is tested on its own.
        limits: { bruteForce: { enabled: false } },
      }),
    )
    await promisify(execFile)(process.execPath, [CLI, 'keys', 'generate', '--out', join(dirname(configPath), 'keys.json')])
    gw = await startGateway(configPath)
  })

  after(async () => {
    await gw?.stop()
    await new Promise<void>((r) => (service ? (service.closeAllConnections(), service.close(() => r())) : r()))
    await Promise.all([up?.close(), ks?.close()])
  })

  /** Sends the token; returns the reply and whether anything reached the upstream or the service. */
  async function call(path: string, token: string): Promise<Reply & { reached: boolean }> {
    const before = up.received.length + serviceSaw.length
    const res = await send(gw.url, path, { headers: bearer(token) })
    return { ...res, reached: up.received.length + serviceSaw.length !== before }
  }

  async function refusedAsClaimType(path: string, token: string, label: string): Promise<void> {
    const res = await call(path, token)
    assert.equal(res.status, 401, `${label} on ${path}: status`)
    assert.equal(res.body.code, 'ERR_AUTHN_INVALID_TOKEN', `${label} on ${path}: code`)
    assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/, `${label} on ${path}: challenge`)
    assert.equal(res.reached, false, `${label} on ${path}: nothing reached the upstream or the service`)
    const event = await gw.waitFor((l) => l.name === 'security' && l.requestId === res.headers['x-request-id'])
    assert.equal(event.reason, 'claim_type', `${label} on ${path}: event reason`)
  }

  test('an scp entry holding a space is refused everywhere, not split into scopes later (401 invalid_token, nothing forwarded)', async () => {
    const token = await ks.sign({ scope: undefined, scp: ['basic', 'x orders:admin'] })
    // /basic needs only "basic", which the token lists; /svc would mint an internal token from it.
    for (const path of ['/basic/x', '/admin/x', '/svc/x']) await refusedAsClaimType(path, token, 'scp "x orders:admin"')
  })

  test('other entries that are not scope-tokens are refused too, in scp and in scope', async () => {
    for (const claims of [
      { scope: undefined, scp: ['basic', ''] },
      { scope: undefined, scp: ['basic', 'a"b'] },
      { scope: undefined, scp: ['basic', 'ordérs'] },
      { scope: 'basic\torders:admin' },
      { scope: 'basic orders\\admin' },
    ]) {
      await refusedAsClaimType('/basic/x', await ks.sign(claims), JSON.stringify(claims))
    }
  })

  test('valid scopes still pass, and the upstream and the service see exactly the scopes judged', async () => {
    const viaScope = await call('/orders/1', await ks.sign({ scope: ' basic  orders:read ' }))
    assert.equal(viaScope.status, 200)
    assert.equal(up.received.at(-1)!.headers['x-auth-scopes'], 'basic orders:read')
    const viaScp = await call('/svc/1', await ks.sign({ scope: undefined, scp: ['orders:read', 'basic'] }))
    assert.equal(viaScp.status, 200)
    assert.deepEqual(serviceSaw.at(-1), ['orders:read', 'basic'])
  })

  test('scp as a space-delimited string (Microsoft Entra ID) grants its scopes, and they travel on unchanged', async () => {
    const token = await ks.sign({ scope: undefined, scp: 'basic orders:read' })
    const res = await call('/orders/1', token)
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.equal(up.received.at(-1)!.headers['x-auth-scopes'], 'basic orders:read')
    assert.equal((await call('/svc/1', token)).status, 200)
    assert.deepEqual(serviceSaw.at(-1), ['basic', 'orders:read'])
    assert.equal((await call('/admin/1', token)).status, 403, 'and no other scope')
    await refusedAsClaimType('/basic/x', await ks.sign({ scope: undefined, scp: 'basic orders\\admin' }), 'scp string with a backslash')
  })

  test('scope takes precedence over scp', async () => {
    const token = await ks.sign({ scope: 'basic', scp: 'orders:read' })
    assert.equal((await call('/basic/1', token)).status, 200)
    assert.equal(up.received.at(-1)!.headers['x-auth-scopes'], 'basic')
    assert.equal((await call('/orders/1', token)).status, 403)
  })
})
