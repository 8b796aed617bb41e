import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { hash, X509Certificate } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer, request } from 'node:https'
import type { AddressInfo } from 'node:net'
import { generate } from 'selfsigned'
import { createVerifier, isVerifyError, type Verifier } from '@portcullis/verify'
import { authenticate, sendProblem } from '@portcullis/verify/node-http'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { refusal } from './helpers/refusal.js'

const AUDIENCE = 'api://orders'
const AT = { audience: AUDIENCE, typ: 'at+jwt' }

interface Pems {
  readonly cert: string
  readonly key: string
  /** The DER certificate. */
  readonly der: Buffer
  /** RFC 8705 x5t#S256, computed here independently of the package. */
  readonly thumbprint: string
}

/** A self-signed certificate for 127.0.0.1, generated at run time. */
async function certificate(commonName: string): Promise<Pems> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  })
  const der = new X509Certificate(pems.cert).raw
  return { cert: pems.cert, key: pems.private, der, thumbprint: hash('sha256', der, 'base64url') }
}

describe('certificate-bound tokens (RFC 8705)', () => {
  let js: JwksServer
  let verifier: Verifier
  let client: Pems
  let other: Pems

  before(async () => {
    js = await startJwksServer()
    verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, requiredTyp: 'at+jwt' })
    client = await certificate('svc-client')
    other = await certificate('other-client')
  })
  after(() => js?.close())

  test('a bound token is accepted with its certificate, fresh and from the cache, and its identity names the binding', async () => {
    const token = js.sign(AT, { cnf: { 'x5t#S256': client.thumbprint } })
    for (let i = 0; i < 2; i++) {
      const identity = await verifier.verify(`Bearer ${token}`, { clientCertificate: client.der })
      assert.equal(identity.subject, 'user-1')
      assert.equal(identity.boundCertificate, client.thumbprint)
    }
  })

  test('a bound token is refused without a certificate or with another one, whether or not it was verified before', async () => {
    for (const cachedFirst of [false, true]) {
      const token = js.sign(AT, { cnf: { 'x5t#S256': client.thumbprint }, jti: `bound-${cachedFirst}` })
      if (cachedFirst) await verifier.verify(token, { clientCertificate: client.der })
      for (const [context, reason] of [
        [undefined, 'certificate_missing'],
        [{}, 'certificate_missing'],
        [{ clientCertificate: null }, 'certificate_missing'],
        [{ clientCertificate: new Uint8Array(0) }, 'certificate_missing'],
        [{ clientCertificate: other.der }, 'certificate_mismatch'],
      ] as const) {
        const err = await refusal(verifier.verify(token, context))
        assert.equal(err.code, 'ERR_AUTHN_INVALID_TOKEN')
        assert.equal(err.status, 401)
        assert.equal(err.reason, reason, `${JSON.stringify(context)}, cached first: ${cachedFirst}`)
      }
    }
  })

  test('any other confirmation is refused, not ignored: DPoP jkt, jwk, an empty or malformed cnf', async () => {
    const shapes: unknown[] = [{ jkt: client.thumbprint }, { jwk: { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' } }, { 'x5t#S256': '' }, { 'x5t#S256': 1 }, 'x5t', null, [], {}]
    for (const cnf of shapes) {
      const token = js.sign(AT, { cnf })
      for (const context of [undefined, { clientCertificate: client.der }]) {
        const err = await refusal(verifier.verify(token, context))
        assert.equal(err.reason, 'unsupported_confirmation', JSON.stringify(cnf))
      }
    }
  })

  test('a token without cnf needs no certificate, and ignores one', async () => {
    const token = js.sign(AT)
    assert.equal((await verifier.verify(token)).boundCertificate, undefined)
    assert.equal((await verifier.verify(token, { clientCertificate: other.der })).subject, 'user-1')
  })

  describe('through the node:http adapter, over real connections', () => {
    let server: Pems
    const reasons: Array<string | undefined> = []
    const handler = async (req: IncomingMessage, res: ServerResponse) => {
      try {
        const identity = await authenticate(verifier, req)
        res.writeHead(200, { 'content-type': 'text/plain' }).end(identity.subject)
      } catch (err) {
        if (!isVerifyError(err)) throw err
        reasons.push(err.reason)
        sendProblem(res, err)
      }
    }
    const tls = createHttpsServer({ requestCert: true, rejectUnauthorized: false }, handler)
    const plain = createHttpServer(handler)
    let tlsPort = 0
    let plainPort = 0

    before(async () => {
      server = await certificate('orders-service')
      tls.setSecureContext({ cert: server.cert, key: server.key })
      await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r))
      await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))
      tlsPort = (tls.address() as AddressInfo).port
      plainPort = (plain.address() as AddressInfo).port
    })
    after(async () => {
      tls.closeAllConnections()
      plain.closeAllConnections()
      await new Promise((r) => tls.close(r))
      await new Promise((r) => plain.close(r))
    })

    /** One request on a new connection, with the given client certificate (or none). */
    function call(token: string, cert: Pems | undefined): Promise<{ status: number; body: string; challenge: string | undefined }> {
      return new Promise((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: tlsPort,
            path: '/orders',
            ca: server.cert,
            agent: false,
            headers: { authorization: `Bearer ${token}` },
            ...(cert ? { cert: cert.cert, key: cert.key } : {}),
          },
          (res) => {
            let body = ''
            res.setEncoding('utf8')
            res.on('data', (c: string) => (body += c))
            res.on('end', () => resolve({ status: res.statusCode!, body, challenge: res.headers['www-authenticate'] }))
          },
        )
        req.on('error', reject)
        req.end()
      })
    }

    test('the connection\'s own client certificate decides, on every request', async () => {
      const token = js.sign(AT, { cnf: { 'x5t#S256': client.thumbprint }, jti: 'over-tls' })
      reasons.length = 0
      assert.deepEqual(await call(token, client), { status: 200, body: 'user-1', challenge: undefined })
      const refused = await call(token, other)
      assert.equal(refused.status, 401)
      assert.match(refused.challenge ?? '', /error="invalid_token"/)
      assert.equal((await call(token, undefined)).status, 401)
      assert.equal((await call(token, client)).status, 200, 'the cached token, with its certificate again')
      assert.deepEqual(reasons, ['certificate_mismatch', 'certificate_missing'])
    })

    test('over plain HTTP a bound token is refused, an unbound one accepted', async () => {
      const bound = js.sign(AT, { cnf: { 'x5t#S256': client.thumbprint }, jti: 'plain' })
      const get = (token: string) => fetch(`http://127.0.0.1:${plainPort}/orders`, { headers: { authorization: `Bearer ${token}` } })
      reasons.length = 0
      const refused = await get(bound)
      await refused.arrayBuffer()
      assert.equal(refused.status, 401)
      assert.deepEqual(reasons, ['certificate_missing'])
      const plainToken = await get(js.sign(AT))
      assert.equal(plainToken.status, 200)
      assert.equal(await plainToken.text(), 'user-1')
    })
  })
})
