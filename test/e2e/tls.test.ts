import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { createServer as createHttpsServer } from 'node:https'
import { hash, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { Agent, fetch } from 'undici'
import { generate } from 'selfsigned'
import { certificate, certificateAuthority, issuedBy, type Pems } from '../helpers/certs.js'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { startOidcProvider } from '../helpers/oidc.js'
import { createVerifier, gatewayTokenVerifier, isVerifyError } from '@portcullis/verify'
import { authenticate, sendProblem } from '@portcullis/verify/node-http'

/** Writes a certificate and key where a ${file:} reference of the config reads them. */
function writePems(dir: string, pems: { cert: string; key: string }): void {
  writeFileSync(join(dir, 'cert.pem'), pems.cert)
  writeFileSync(join(dir, 'key.pem'), pems.key)
}

/** The certificate the listener presents and the protocol agreed, or the handshake's error. */
function handshake(url: string, options: ConnectionOptions = {}): Promise<{ fingerprint: string; protocol: string | null } | { error: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false, ...options }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256
      const protocol = socket.getProtocol()
      socket.end()
      resolve({ fingerprint, protocol })
    })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }))
  })
}

const fingerprintOf = (cert: string) => new X509Certificate(cert).fingerprint256

function tlsConfig(upstreamUrl: string, dir: string, tls: Record<string, unknown> = {}): Record<string, unknown> {
  return baseConfig({
    listeners: [
      { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', ...tls } },
      { host: '127.0.0.1', port: 0 },
    ],
    upstreams: [{ id: 'u', url: upstreamUrl }],
    routes: [{ path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'public' }],
  })
}

/** Writes the config into `dir`, next to the PEM files its ${file:} references name. */
function configIn(dir: string, config: Record<string, unknown>): string {
  const path = join(dir, 'portcullis.json')
  writeFileSync(path, JSON.stringify(config, null, 2))
  return path
}

describe('a listener with a tls section serves HTTPS', () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  let dir: string
  let first: { cert: string; key: string }
  let httpsUrl: string
  let httpUrl: string
  before(async () => {
    up = await startUpstream()
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
    first = await certificate('portcullis-test-1')
    writePems(dir, first)
    gw = await startGateway(configIn(dir, tlsConfig(up.url, dir)), { waitReady: false })
    const urls = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
    ;[httpsUrl, httpUrl] = urls
  })
  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('the listener says https; a client trusting the certificate gets its answer, and the upstream is told the client used https', async () => {
    assert.match(httpsUrl, /^https:\/\/127\.0\.0\.1:\d+$/)
    assert.match(httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
    const dispatcher = new Agent({ connect: { ca: first.cert } })
    const r = await fetch(`${httpsUrl}/p/secure`, { dispatcher })
    assert.equal(r.status, 200)
    await r.text()
    const plain = await fetch(`${httpUrl}/p/plain`)
    assert.equal(plain.status, 200)
    await plain.text()
    const seen = (path: string) => up.received.find((x) => x.url === path)!.headers['x-forwarded-proto']
    assert.equal(seen('/p/secure'), 'https')
    assert.equal(seen('/p/plain'), 'http')
    await dispatcher.close()
  })

  test('a client that does not trust the certificate is refused by its own check; plain HTTP on the TLS port gets no answer', async () => {
    const strict = await handshake(httpsUrl, { rejectUnauthorized: true })
    assert.ok('error' in strict && /SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/.test(strict.error), JSON.stringify(strict))
    const plain = await fetch(`${httpsUrl.replace('https:', 'http:')}/p/x`).then(
      (r) => r.status,
      () => 'refused',
    )
    assert.equal(plain, 'refused')
    assert.equal(up.received.filter((x) => x.url === '/p/x').length, 0)
  })

  test('TLS 1.2 and 1.3 are accepted by default; TLS 1.1 is not', async () => {
    const v12 = await handshake(httpsUrl, { maxVersion: 'TLSv1.2' })
    assert.deepEqual(v12, { fingerprint: fingerprintOf(first.cert), protocol: 'TLSv1.2' })
    const v13 = await handshake(httpsUrl)
    assert.equal('protocol' in v13 && v13.protocol, 'TLSv1.3')
    const v11 = await handshake(httpsUrl, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
    assert.ok('error' in v11, JSON.stringify(v11))
  })

  test('TLS 1.2 offers only forward-secret AEAD suites: a client offering RSA key exchange or CBC alone is refused', async () => {
    const fs = await handshake(httpsUrl, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })
    assert.equal('protocol' in fs && fs.protocol, 'TLSv1.2', JSON.stringify(fs))
    for (const ciphers of ['AES128-GCM-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-SHA256']) {
      const r = await handshake(httpsUrl, { maxVersion: 'TLSv1.2', ciphers })
      assert.ok('error' in r, `${ciphers}: ${JSON.stringify(r)}`)
    }
  })

  test('a reload applies a renewed certificate to new connections, without a restart-only warning', async () => {
    const second = await certificate('portcullis-test-2')
    writePems(dir, second)
    gw.child.kill('SIGHUP')
    await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
    assert.deepEqual(await handshake(httpsUrl), { fingerprint: fingerprintOf(second.cert), protocol: 'TLSv1.3' })
    assert.equal(gw.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes('take effect on restart only')).length, 0)
  })
})

test('minVersion TLSv1.3 refuses a TLS 1.2 client that the default accepts', async (t) => {
  const up = await startUpstream()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
  const pems = await certificate('portcullis-test-13')
  writePems(dir, pems)
  const gw = await startGateway(configIn(dir, tlsConfig(up.url, dir, { minVersion: 'TLSv1.3' })), { waitReady: false })
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0]
  const v12 = await handshake(url, { maxVersion: 'TLSv1.2' })
  assert.ok('error' in v12, JSON.stringify(v12))
  // The refused handshake is a security event, with OpenSSL's reason.
  const event = await gw.waitFor((l) => l.event === 'tls.handshake_failed')
  assert.equal(event.clientIp, '127.0.0.1')
  assert.match(String(event.reason), /^[a-z0-9_]*protocol[a-z0-9_]*$/)
  assert.deepEqual(await handshake(url), { fingerprint: fingerprintOf(pems.cert), protocol: 'TLSv1.3' })
})

test('a TLS handshake that never completes is cut after headersTimeoutMs, and recorded', async (t) => {
  const up = await startUpstream()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
  writePems(dir, await certificate('portcullis-test-slow'))
  const gw = await startGateway(
    configIn(dir, { ...tlsConfig(up.url, dir), server: { headersTimeoutMs: 500, requestTimeoutMs: 1000 }, metrics: { enabled: true, port: 0 } }),
    { waitReady: false },
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const { hostname, port } = new URL((gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0])
  // A TCP connection that starts a ClientHello and never finishes it.
  const sock = netConnect(Number(port), hostname)
  sock.on('error', () => {})
  await new Promise((r) => sock.once('connect', r))
  sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40]))
  // node's own default would hold it for 120 s.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the unfinished handshake was not cut')), 20_000)
    sock.once('close', () => (clearTimeout(timer), resolve()))
  })
  const event = await gw.waitFor((l) => l.event === 'tls.handshake_failed')
  assert.equal(event.reason, 'handshake_timeout')
  assert.equal(event.clientIp, '127.0.0.1')
  const metricsUrl = String(gw.lines.find((l) => l.msg === 'listening')!.metrics)
  const text = await (await fetch(metricsUrl)).text()
  assert.match(text, /^gateway_tls_handshake_failures_total\{reason="handshake_timeout"\} 1$/m)
})

/** Runs `portcullis <args>` to completion. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr })
    })
  })
}

test('a key that is not the certificate\'s, or an inline key, is refused by check-config and start, without the key in the message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'))
  const a = await certificate('portcullis-test-a')
  const b = await certificate('portcullis-test-b')
  writePems(dir, { cert: a.cert, key: b.key })
  const mismatched = configIn(dir, tlsConfig('http://127.0.0.1:9', dir))
  for (const command of ['check-config', 'start']) {
    const r = await cli(command === 'start' ? ['start', '--config', mismatched] : ['check-config', mismatched])
    assert.equal(r.code, 1, `${command}: ${r.stderr}`)
    assert.match(r.stderr, /\/listeners\/0\/tls\s.*the certificate and key cannot be used for TLS \(ERR_OSSL_[A-Z0-9_]+\)/, command)
    assert.doesNotMatch(r.stderr + r.stdout, /PRIVATE KEY|BEGIN/, command)
  }
  const keyBody = b.key.split('\n')[1]
  const inline = writeConfig(tlsConfig('http://127.0.0.1:9', dir, { cert: a.cert, key: a.key }))
  const r = await cli(['check-config', inline])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /\/listeners\/0\/tls\/key\s.*tls-key-inline/)
  assert.ok(!r.stderr.includes(keyBody) && !r.stderr.includes(a.key.split('\n')[1]), 'the key is not printed')
})

/** RFC 8705 §3.1: base64url SHA-256 of the certificate's DER. */
const thumbprintOf = (cert: string) => hash('sha256', new X509Certificate(cert).raw, 'base64url')

describe('mutual TLS: tokens bound to a client certificate (cnf x5t#S256, RFC 8705) need that certificate', () => {
  let up: RecordingUpstream
  let ks: KeyServer
  let gw: StartedGateway
  let server: { cert: string; key: string }
  let alice: { cert: string; key: string }
  let mallory: { cert: string; key: string }
  let httpsUrl: string
  let httpUrl: string
  before(async () => {
    up = await startUpstream()
    ks = await startKeyServer()
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'))
    server = await certificate('portcullis-server')
    alice = await certificate('alice-client')
    mallory = await certificate('mallory-client')
    writePems(dir, server)
    gw = await startGateway(
      configIn(
        dir,
        baseConfig({
          listeners: [
            { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', clientCertificates: 'request' } },
            { host: '127.0.0.1', port: 0 },
          ],
          issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
          upstreams: [{ id: 'u', url: up.url }],
          routes: [{ path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'required' }],
          // Refusals here are the point of the test; brute-force protection must not start answering 429.
          limits: { bruteForce: { enabled: false } },
        }),
      ),
      { waitReady: false },
    )
    ;[httpsUrl, httpUrl] = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
  })
  after(async () => {
    await gw?.stop()
    await up?.close()
    await ks?.close()
  })

  /** A GET with the token, over TLS with the given client certificate (or none), or over plain HTTP. */
  async function call(path: string, token: string, client: { cert: string; key: string } | undefined | 'plain') {
    const headers = { authorization: `Bearer ${token}` }
    if (client === 'plain') return fetch(`${httpUrl}${path}`, { headers })
    const dispatcher = new Agent({ connect: { ca: server.cert, ...(client ? { cert: client.cert, key: client.key } : {}) } })
    try {
      const r = await fetch(`${httpsUrl}${path}`, { headers, dispatcher })
      await r.arrayBuffer()
      return r
    } finally {
      await dispatcher.close()
    }
  }
  const reasonOf = async (path: string) => (await gw.waitFor((l) => l.name === 'security' && l.path === path)).reason

  test('with the bound certificate the token works, again from the cache; the upstream gets the request', async () => {
    const token = await ks.sign({ cnf: { 'x5t#S256': thumbprintOf(alice.cert) } })
    assert.equal((await call('/p/alice-1', token, alice)).status, 200)
    assert.equal((await call('/p/alice-2', token, alice)).status, 200)
    assert.equal((await call('/p/alice-3', token, alice)).status, 200)
    assert.deepEqual(up.received.filter((r) => r.url.startsWith('/p/alice-')).length, 3)
  })

  test('another certificate, none, or plain HTTP: 401 invalid_token, after the token was cached too, and nothing reaches the upstream', async () => {
    const token = await ks.sign({ cnf: { 'x5t#S256': thumbprintOf(alice.cert) }, jti: 'bound-and-stolen' })
    // Cached first (a token is cached on its second verification).
    assert.equal((await call('/p/ok-1', token, alice)).status, 200)
    assert.equal((await call('/p/ok-2', token, alice)).status, 200)
    for (const [path, client, reason] of [
      ['/p/stolen-other-cert', mallory, 'certificate_mismatch'],
      ['/p/stolen-no-cert', undefined, 'certificate_missing'],
      ['/p/stolen-plain', 'plain', 'certificate_missing'],
    ] as const) {
      const r = await call(path, token, client)
      assert.equal(r.status, 401, path)
      assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/, path)
      assert.equal(await reasonOf(path), reason, path)
    }
    const event = await gw.waitFor((l) => l.name === 'security' && l.path === '/p/stolen-no-cert')
    assert.equal(event.jti, 'bound-and-stolen')
    // A fresh verification (not the cache) refuses it the same way.
    const fresh = await ks.sign({ cnf: { 'x5t#S256': thumbprintOf(alice.cert) } })
    assert.equal((await call('/p/fresh-other-cert', fresh, mallory)).status, 401)
    assert.equal(await reasonOf('/p/fresh-other-cert'), 'certificate_mismatch')
    assert.equal(up.received.filter((r) => /stolen|fresh/.test(r.url)).length, 0)
  })

  test('a confirmation the gateway cannot check (DPoP jkt, a jwk, a malformed cnf) is refused, never ignored; an unbound token needs no certificate', async () => {
    for (const [path, cnf] of [
      ['/p/dpop', { jkt: 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg' }],
      ['/p/jwk', { jwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } }],
      ['/p/cnf-string', 'x5t'],
      ['/p/cnf-empty-x5t', { 'x5t#S256': '' }],
    ] as const) {
      const token = await ks.sign({ cnf })
      assert.equal((await call(path, token, alice)).status, 401, path)
      assert.equal(await reasonOf(path), 'unsupported_confirmation', path)
    }
    const plain = await ks.sign()
    assert.equal((await call('/p/unbound', plain, undefined)).status, 200)
    assert.equal((await call('/p/unbound-plain', plain, 'plain')).status, 200)
  })
})

test('clientCertificates: require lets only clients with a certificate from clientCa connect', async (t) => {
  const up = await startUpstream()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'))
  const server = await certificate('portcullis-server')
  const ca = await certificateAuthority('test client CA')
  const issued = await issuedBy(ca, 'client-from-ca')
  const stranger = await certificate('client-self-signed')
  writePems(dir, server)
  writeFileSync(join(dir, 'client-ca.pem'), ca.cert)
  const gw = await startGateway(
    configIn(
      dir,
      tlsConfig(up.url, dir, { clientCertificates: 'require', clientCa: '${file:client-ca.pem}' }),
    ),
    { waitReady: false },
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0]
  const get = async (client?: { cert: string; key: string }) => {
    const dispatcher = new Agent({ connect: { ca: server.cert, ...(client ? client : {}) } })
    try {
      const r = await fetch(`${url}/p/x`, { dispatcher })
      await r.arrayBuffer()
      return r.status
    } catch {
      return 'refused'
    } finally {
      await dispatcher.close()
    }
  }
  assert.equal(await get(issued), 200)
  assert.equal(await get(), 'refused')
  assert.equal(await get({ cert: stranger.cert, key: stranger.key }), 'refused')
  assert.equal(up.received.length, 1)
})

test('oidc-provider\'s certificate-bound access tokens work with the client certificate they were issued for, and only with it', async (t) => {
  const op = await startOidcProvider({ certificateBound: true })
  const up = await startUpstream()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'))
  const server = await certificate('portcullis-server')
  const client = await certificate('svc-client')
  const other = await certificate('other-client')
  writePems(dir, server)
  const gw = await startGateway(
    configIn(
      dir,
      baseConfig({
        listeners: [{ host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', clientCertificates: 'request' } }],
        issuers: [{ id: 'op', discoveryUrl: op.discoveryUrl, audiences: [op.audience] }],
        upstreams: [{ id: 'u', url: up.url }],
        routes: [{ path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'required', scopes: { allOf: ['read'] } }],
      }),
    ),
    { waitReady: false },
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
    await op.close()
  })
  const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0]
  const token = await op.getToken({ certificate: client.cert })
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { cnf?: Record<string, string> }
  assert.equal(payload.cnf?.['x5t#S256'], thumbprintOf(client.cert), 'the provider bound the token to the certificate')
  const get = async (cert: { cert: string; key: string }) => {
    const dispatcher = new Agent({ connect: { ca: server.cert, cert: cert.cert, key: cert.key } })
    try {
      for (let i = 0; i < 100; i++) {
        const r = await fetch(`${url}/p/x`, { headers: { authorization: `Bearer ${token}` }, dispatcher })
        await r.arrayBuffer()
        // Until the gateway has the provider's keys it answers 503.
        if (r.status !== 503) return r.status
        await new Promise((r) => setTimeout(r, 50))
      }
      return 503
    } finally {
      await dispatcher.close()
    }
  }
  assert.equal(await get(client), 200)
  assert.equal(await get(other), 401)
})

test('@portcullis/verify in a service checks oidc-provider\'s certificate-bound tokens against the service\'s own TLS connection', async (t) => {
  const op = await startOidcProvider({ certificateBound: true })
  const service = await certificate('orders-service')
  const client = await certificate('svc-client')
  const other = await certificate('other-client')
  const verifier = createVerifier({ issuer: op.issuer, audience: op.audience, discoveryUrl: op.discoveryUrl, requiredTyp: 'at+jwt' })
  const reasons: Array<string | undefined> = []
  // A service that terminates TLS itself and asks for client certificates, as RFC 8705 §3 has it.
  const server = createHttpsServer({ cert: service.cert, key: service.key, requestCert: true, rejectUnauthorized: false }, async (req, res) => {
    try {
      const identity = await authenticate(verifier, req, { scopes: ['read'] })
      res.writeHead(200).end(identity.clientId)
    } catch (err) {
      if (!isVerifyError(err)) throw err
      reasons.push(err.reason)
      sendProblem(res, err)
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
    await op.close()
  })
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/orders`
  const token = await op.getToken({ certificate: client.cert })
  const get = async (cert: { cert: string; key: string } | undefined) => {
    const dispatcher = new Agent({ connect: { ca: service.cert, ...(cert ?? {}) } })
    try {
      const r = await fetch(url, { headers: { authorization: `Bearer ${token}` }, dispatcher })
      return { status: r.status, body: await r.text() }
    } finally {
      await dispatcher.close()
    }
  }
  assert.equal((await get(client)).status, 200)
  assert.equal((await get(other)).status, 401)
  assert.equal((await get(undefined)).status, 401)
  assert.deepEqual(reasons, ['certificate_mismatch', 'certificate_missing'])
})

/** A CA for client certificates, and a client certificate it issued. */
async function clientCaAndCertificate(): Promise<{ ca: string; caKey: string; client: Pems }> {
  const ca = await certificateAuthority('test client CA')
  return { ca: ca.cert, caKey: ca.key, client: await issuedBy(ca, 'client-from-ca') }
}

/** Client-certificate claims a client may try to slip past the gateway to an upstream that trusts its TLS terminator. */
const SPOOFED_CERTIFICATE_HEADERS = {
  'client-cert': ':AAAA:',
  'client-cert-chain': ':AAAA:',
  'x-ssl-client-cert': 'forged',
  'x-ssl-client-verify': 'SUCCESS',
  'ssl-client-s-dn': 'CN=admin',
  'x-client-cert': 'forged',
  'x-client-certificate': 'forged',
  'x-arr-clientcert': 'forged',
  'x-amzn-mtls-clientcert': 'forged',
  'x-forwarded-client-cert': 'By=spiffe://x;Hash=00;Subject="CN=admin"',
}

describe('client certificates towards the upstream (RFC 9440 Client-Cert)', () => {
  let up: RecordingUpstream
  let dir: string
  let server: { cert: string; key: string }
  let trusted: { ca: string; caKey: string; client: { cert: string; key: string } }
  let stranger: { cert: string; key: string }
  const derBase64 = (pem: string) => new X509Certificate(pem).raw.toString('base64')

  before(async () => {
    up = await startUpstream()
    dir = mkdtempSync(join(tmpdir(), 'portcullis-client-cert-'))
    server = await certificate('portcullis-server')
    trusted = await clientCaAndCertificate()
    stranger = await certificate('client-self-signed')
    writePems(dir, server)
    writeFileSync(join(dir, 'client-ca.pem'), trusted.ca)
  })
  after(() => up?.close())

  async function start(t: { after(fn: () => unknown): void }, identity?: Record<string, unknown>): Promise<{ tls: string; plain: string; gw: StartedGateway }> {
    const config = tlsConfig(up.url, dir, { clientCertificates: 'request', clientCa: '${file:client-ca.pem}' })
    const gw = await startGateway(configIn(dir, identity ? { ...config, identity } : config), { waitReady: false })
    t.after(() => gw.stop())
    const [tls, plain] = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
    return { tls, plain, gw }
  }

  /** The headers the upstream received for one request with the spoofed headers, over a new connection. */
  async function forwarded(url: string, client?: { cert: string; key: string }): Promise<Record<string, unknown>> {
    const dispatcher = new Agent({ connect: { ca: server.cert, ...(client ?? {}) } })
    try {
      const r = await fetch(`${url}/p/x`, { headers: SPOOFED_CERTIFICATE_HEADERS, dispatcher })
      await r.arrayBuffer()
      assert.equal(r.status, 200)
      return up.received.at(-1)!.headers
    } finally {
      await dispatcher.close()
    }
  }

  test('a certificate that chains to clientCa is sent as Client-Cert; none of the client\'s certificate headers passes', async (t) => {
    const { tls } = await start(t)
    const h = await forwarded(tls, trusted.client)
    assert.equal(h['client-cert'], `:${derBase64(trusted.client.cert)}:`)
    assert.match(String(h['client-cert']), /^:[A-Za-z0-9+/]+={0,2}:$/, 'an RFC 8941 byte sequence')
    for (const name of Object.keys(SPOOFED_CERTIFICATE_HEADERS)) if (name !== 'client-cert') assert.equal(h[name], undefined, name)
  })

  test('a certificate issued by an intermediate CA: its intermediate goes in Client-Cert-Chain, the trust anchor does not', async (t) => {
    const intermediate = await certificateAuthority('test intermediate CA', { cert: trusted.ca, key: trusted.caKey })
    const leaf = await issuedBy(intermediate, 'client-via-intermediate')
    const { tls } = await start(t)
    // The client sends its certificate and the intermediate; the listener trusts the root only.
    const h = await forwarded(tls, { cert: `${leaf.cert}\n${intermediate.cert}`, key: leaf.key })
    assert.equal(h['client-cert'], `:${derBase64(leaf.cert)}:`)
    assert.equal(h['client-cert-chain'], `:${derBase64(intermediate.cert)}:`)
    const renamed = await start(t, { headers: { clientCertificateChain: 'x-mtls-chain' } })
    const r = await forwarded(renamed.tls, { cert: `${leaf.cert}\n${intermediate.cert}`, key: leaf.key })
    assert.equal(r['x-mtls-chain'], `:${derBase64(intermediate.cert)}:`)
    assert.equal(r['client-cert-chain'], undefined, 'a client\'s Client-Cert-Chain is still removed')
  })

  test('a certificate the listener did not verify, no certificate, or plain HTTP: no Client-Cert at all', async (t) => {
    const { tls, plain } = await start(t)
    for (const [url, client, what] of [
      [tls, stranger, 'a self-signed certificate (accepted by clientCertificates: request, not verified)'],
      [tls, undefined, 'no certificate'],
      [plain, undefined, 'the plain listener'],
    ] as const) {
      const h = await forwarded(url, client)
      for (const name of Object.keys(SPOOFED_CERTIFICATE_HEADERS)) assert.equal(h[name], undefined, `${what}: ${name}`)
    }
  })

  test('identity.headers.clientCertificate renames the header, and forwardClientCertificate: false sends none', async (t) => {
    const renamed = await start(t, { headers: { clientCertificate: 'x-mtls-certificate' } })
    const h = await forwarded(renamed.tls, trusted.client)
    assert.equal(h['x-mtls-certificate'], `:${derBase64(trusted.client.cert)}:`)
    assert.equal(h['client-cert'], undefined, 'a client\'s Client-Cert is still removed')
    const off = await start(t, { forwardClientCertificate: false })
    const none = await forwarded(off.tls, trusted.client)
    for (const name of Object.keys(SPOOFED_CERTIFICATE_HEADERS)) assert.equal(none[name], undefined, name)
  })

  test('a TLS 1.2 client cannot renegotiate: the connection ends instead of serving another request, and the attempt is recorded', async (t) => {
    const { tls, gw } = await start(t)
    const { port } = new URL(tls)
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: Number(port), ca: server.cert, maxVersion: 'TLSv1.2', ...trusted.client }, () => {
        // Whatever the callback reports, the connection must not answer a request afterwards.
        socket.renegotiate({ rejectUnauthorized: true }, () => {
          if (!socket.destroyed) socket.write('GET /p/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        })
      })
      let data = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        data += chunk
        if (data.includes('\r\n\r\n')) {
          resolve(data.slice(0, 12))
          socket.destroy()
        }
      })
      for (const event of ['error', 'end', 'close']) socket.on(event, () => resolve('closed'))
    })
    assert.equal(outcome, 'closed')
    const event = await gw.waitFor((l) => l.event === 'tls.handshake_failed')
    assert.equal(event.reason, 'renegotiation')
    assert.equal(event.clientIp, '127.0.0.1')
  })
})

describe('several certificates on one listener, chosen by the server name the client asks for (SNI)', () => {
  const pems: Record<string, { cert: string; key: string }> = {}
  const write = (dir: string, name: string, pair: { cert: string; key: string }) => {
    writeFileSync(join(dir, `${name}.pem`), pair.cert)
    writeFileSync(join(dir, `${name}-key.pem`), pair.key)
  }
  const sni = (name: string, serverNames: string[]) => ({ serverNames, cert: `\${file:${name}.pem}`, key: `\${file:${name}-key.pem}` })

  before(async () => {
    for (const name of ['default', 'api', 'wildcard', 'api-renewed']) pems[name] = await certificate(`portcullis-${name}`)
  })

  /** A gateway on a TLS listener with these tls settings; its URL. */
  async function start(t: { after(fn: () => unknown): void }, up: RecordingUpstream, dir: string, tls: Record<string, unknown>): Promise<{ gw: StartedGateway; url: string }> {
    const gw = await startGateway(configIn(dir, tlsConfig(up.url, dir, tls)), { waitReady: false })
    t.after(async () => {
      await gw.stop()
      await up.close()
    })
    return { gw, url: (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0] }
  }

  /** Which of the test pairs the listener presents to a client asking for servername (none: no SNI), or "refused". */
  async function presentedAt(url: string, servername?: string): Promise<string> {
    const r = await handshake(url, servername === undefined ? {} : { servername })
    if (!('fingerprint' in r)) return 'refused'
    return Object.entries(pems).find(([, p]) => fingerprintOf(p.cert) === r.fingerprint)?.[0] ?? r.fingerprint
  }

  test('an exact name before a wildcard, a wildcard for one label only, the listener\'s own certificate for anything else; a reload renews them', async (t) => {
    const up = await startUpstream()
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-sni-'))
    writePems(dir, pems.default)
    write(dir, 'api', pems.api)
    write(dir, 'wildcard', pems.wildcard)
    const { gw, url } = await start(t, up, dir, { sni: [sni('api', ['api.example.test']), sni('wildcard', ['*.example.test'])] })
    const presented = (servername?: string) => presentedAt(url, servername)
    assert.equal(await presented('api.example.test'), 'api')
    assert.equal(await presented('API.Example.Test'), 'api', 'server names are case-insensitive')
    assert.equal(await presented('www.example.test'), 'wildcard')
    assert.equal(await presented('a.b.example.test'), 'default', 'a wildcard covers one label')
    assert.equal(await presented('example.test'), 'default', 'a wildcard does not cover the bare name')
    assert.equal(await presented('other.test'), 'default')
    assert.equal(await presented(), 'default', 'no server name')

    // A request through the SNI certificate reaches the upstream like any other.
    // The test certificates name 127.0.0.1, not api.example.test: the chain is checked, the name is not.
    const dispatcher = new Agent({ connect: { ca: pems.api.cert, servername: 'api.example.test', checkServerIdentity: () => undefined } })
    try {
      const r = await fetch(`${url}/p/sni`, { dispatcher })
      assert.equal(r.status, 200)
      await r.arrayBuffer()
    } finally {
      await dispatcher.close()
    }

    write(dir, 'api', pems['api-renewed'])
    gw.child.kill('SIGHUP')
    await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
    assert.equal(await presented('api.example.test'), 'api-renewed')
    assert.equal(await presented('www.example.test'), 'wildcard')
  })

  test('unknownServerNames: refuse ends the handshake of a client naming another server, or none, before any certificate; the names served pass', async (t) => {
    const up = await startUpstream()
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-sni-'))
    // The listener's own certificate names localhost (certificate() above); the SNI entry api.example.test.
    writePems(dir, pems.default)
    write(dir, 'api', pems.api)
    const { gw, url } = await start(t, up, dir, { unknownServerNames: 'refuse', sni: [sni('api', ['api.example.test'])] })
    const fingerprint = (servername?: string) => presentedAt(url, servername)
    assert.equal(await fingerprint('api.example.test'), 'api')
    assert.equal(await fingerprint('LOCALHOST'), 'default', 'a name the listener\'s own certificate covers')
    assert.equal(await fingerprint('other.example.test'), 'refused')
    assert.equal(await fingerprint(), 'refused', 'no server name (an address)')
    const event = await gw.waitFor((l) => l.event === 'tls.handshake_failed' && l.reason === 'unknown_server_name')
    assert.equal(event.clientIp, '127.0.0.1')
    // A request that names the listener's own host is served.
    const dispatcher = new Agent({ connect: { ca: pems.default.cert, servername: 'localhost' } })
    try {
      const r = await fetch(`${url}/p/own`, { dispatcher })
      assert.equal(r.status, 200)
      await r.arrayBuffer()
    } finally {
      await dispatcher.close()
    }
  })

  test('check-config refuses an SNI pair that does not load, a name given to two entries, and an inline SNI key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-sni-'))
    writePems(dir, pems.default)
    write(dir, 'api', pems.api)
    writeFileSync(join(dir, 'mismatched.pem'), pems.api.cert)
    writeFileSync(join(dir, 'mismatched-key.pem'), pems.wildcard.key)
    const broken = configIn(
      dir,
      tlsConfig('http://127.0.0.1:9', dir, { sni: [sni('api', ['api.example.test', 'www.example.test']), sni('mismatched', ['WWW.example.test'])] }),
    )
    const r = await cli(['check-config', broken])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /\/listeners\/0\/tls\/sni\/1\s.*the certificate and key cannot be used for TLS \(ERR_OSSL_[A-Z0-9_]+\)/)
    assert.match(r.stderr, /\/listeners\/0\/tls\/sni\/1\/serverNames\/0\s.*"www\.example\.test" is already given to \/sni\/0/)
    assert.doesNotMatch(r.stderr + r.stdout, /PRIVATE KEY|BEGIN/)
    const inline = configIn(dir, tlsConfig('http://127.0.0.1:9', dir, { sni: [{ serverNames: ['api.example.test'], cert: pems.api.cert, key: pems.api.key }] }))
    const lint = await cli(['check-config', inline])
    assert.equal(lint.code, 1, lint.stderr)
    assert.match(lint.stderr, /\/listeners\/0\/tls\/sni\/0\/key\s.*tls-key-inline/)
    assert.ok(!lint.stderr.includes(pems.api.key.split('\n')[1]), 'the key is not printed')
  })
})

describe('TLS towards an upstream: a private CA, the gateway\'s client certificate, a server name', () => {
  let dir: string
  let upstreamUrl: string
  let upstream: ReturnType<typeof createHttpsServer>
  /** Subject CNs of the client certificates the upstream saw, one per request. */
  const seen: string[] = []
  let gatewayClient: { cert: string; key: string }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-upstream-tls-'))
    // The upstream's certificate comes from a private CA and names orders.internal only (not 127.0.0.1).
    const privateCa = await certificateAuthority('private upstream CA')
    const serverPems = await issuedBy(privateCa, 'orders.internal', [{ type: 2, value: 'orders.internal' }])
    // The upstream admits only clients with a certificate from its client CA.
    const clients = await clientCaAndCertificate()
    gatewayClient = clients.client
    writeFileSync(join(dir, 'upstream-ca.pem'), privateCa.cert)
    writeFileSync(join(dir, 'client.pem'), gatewayClient.cert)
    writeFileSync(join(dir, 'client-key.pem'), gatewayClient.key)
    upstream = createHttpsServer({ cert: serverPems.cert, key: serverPems.key, ca: clients.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  })
  after(async () => {
    upstream?.closeAllConnections()
    await new Promise((r) => upstream?.close(r))
  })

  const fullTls = { ca: '${file:upstream-ca.pem}', cert: '${file:client.pem}', key: '${file:client-key.pem}', serverName: 'orders.internal' }

  async function statusThrough(t: { after(fn: () => unknown): void }, tls: Record<string, unknown> | undefined): Promise<number> {
    const config = baseConfig({
      upstreams: [{ id: 'orders', url: upstreamUrl, ...(tls ? { tls } : {}) }],
      routes: [{ path: '/p/**', methods: ['GET'], upstream: 'orders', auth: 'public' }],
    })
    const gw = await startGateway(configIn(dir, config), { waitReady: false })
    t.after(() => gw.stop())
    const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0]
    const r = await fetch(`${url}/p/x`)
    await r.arrayBuffer()
    return r.status
  }

  test('with the private CA, the client certificate and the server name, the request reaches the upstream, which sees the gateway\'s certificate', async (t) => {
    seen.length = 0
    assert.equal(await statusThrough(t, fullTls), 200)
    assert.deepEqual(seen, ['client-from-ca'])
  })

  test('without the private CA, without the client certificate, or without the server name, the upstream is not reached: 502', async (t) => {
    seen.length = 0
    const { ca: _ca, ...noCa } = fullTls
    const { cert: _cert, key: _key, ...noCert } = fullTls
    const { serverName: _name, ...noName } = fullTls
    assert.equal(await statusThrough(t, noCa), 502, 'the system store does not know the private CA')
    assert.equal(await statusThrough(t, noCert), 502, 'the upstream requires a client certificate')
    assert.equal(await statusThrough(t, noName), 502, 'the certificate names orders.internal, not 127.0.0.1')
    assert.equal(await statusThrough(t, undefined), 502)
    assert.deepEqual(seen, [])
  })

  test('check-config refuses tls on an http:// upstream, a certificate without its key, an unreadable CA list and an inline key', async () => {
    writeFileSync(join(dir, 'not-a-ca.pem'), 'not a certificate')
    const configWith = (url: string, tls: Record<string, unknown>) =>
      configIn(dir, baseConfig({ upstreams: [{ id: 'orders', url, tls }], routes: [{ path: '/p/**', methods: ['GET'], upstream: 'orders', auth: 'public' }] }))
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['http://127.0.0.1:9', { ca: '${file:upstream-ca.pem}' }, /\/upstreams\/0\/tls\s.*tls applies to https:\/\/ upstreams only/],
      ['https://127.0.0.1:9', { cert: '${file:client.pem}' }, /\/upstreams\/0\/tls\s.*needs both cert and key/],
      ['https://127.0.0.1:9', { ca: '${file:not-a-ca.pem}' }, /\/upstreams\/0\/tls\/ca\s.*ca holds no PEM certificate/],
      ['https://127.0.0.1:9', { cert: '${file:client.pem}', key: gatewayClient.key }, /\/upstreams\/0\/tls\/key\s.*tls-key-inline/],
    ]
    for (const [url, tls, expected] of cases) {
      const r = await cli(['check-config', configWith(url, tls)])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, expected)
      assert.ok(!r.stderr.includes(gatewayClient.key.split('\n')[1]), 'the key is not printed')
    }
  })
})

describe('tls.ciphers narrows the suites a listener offers', () => {
  test('a client offering only suites left out is refused; one offering a named suite connects, over TLS 1.2 and 1.3', async (t) => {
    const up = await startUpstream()
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-ciphers-'))
    const pems = await certificate('portcullis-ciphers')
    writePems(dir, pems)
    const gw = await startGateway(configIn(dir, tlsConfig(up.url, dir, { ciphers: ['TLS_AES_256_GCM_SHA384', 'ECDHE-RSA-AES256-GCM-SHA384'] })), { waitReady: false })
    t.after(async () => {
      await gw.stop()
      await up.close()
    })
    const url = (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0]
    const v12 = (ciphers: string) => handshake(url, { maxVersion: 'TLSv1.2', ciphers })
    const v13 = (ciphers: string) => handshake(url, { minVersion: 'TLSv1.3', ciphers })
    assert.deepEqual(await v12('ECDHE-RSA-AES256-GCM-SHA384'), { fingerprint: fingerprintOf(pems.cert), protocol: 'TLSv1.2' })
    assert.ok('error' in (await v12('ECDHE-RSA-AES128-GCM-SHA256')), 'AES-128 over TLS 1.2 was left out')
    assert.ok('error' in (await v12('ECDHE-RSA-CHACHA20-POLY1305')), 'ChaCha20 over TLS 1.2 was left out')
    assert.deepEqual(await v13('TLS_AES_256_GCM_SHA384'), { fingerprint: fingerprintOf(pems.cert), protocol: 'TLSv1.3' })
    assert.ok('error' in (await v13('TLS_AES_128_GCM_SHA256')), 'TLS_AES_128_GCM_SHA256 was left out')
  })

  test('check-config refuses a list without a TLS 1.3 suite, without a TLS 1.2 suite under minVersion TLSv1.2, or naming a weaker suite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-ciphers-'))
    writePems(dir, await certificate('portcullis-ciphers'))
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ciphers: ['ECDHE-RSA-AES256-GCM-SHA384'] }, /\/listeners\/0\/tls\s.*no TLS 1\.3 suite/],
      [{ ciphers: ['TLS_AES_256_GCM_SHA384'] }, /\/listeners\/0\/tls\s.*no TLS 1\.2 suite \(ECDHE-\*\) while minVersion is TLSv1\.2/],
      [{ ciphers: ['TLS_AES_256_GCM_SHA384', 'AES256-SHA'] }, /\/listeners\/0\/tls\/ciphers\/1\s/],
    ]
    for (const [tls, expected] of cases) {
      const r = await cli(['check-config', configIn(dir, tlsConfig('http://127.0.0.1:9', dir, tls))])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, expected)
    }
    const only13 = await cli(['check-config', configIn(dir, tlsConfig('http://127.0.0.1:9', dir, { ciphers: ['TLS_AES_256_GCM_SHA384'], minVersion: 'TLSv1.3' }))])
    assert.equal(only13.code, 0, only13.stderr)
  })
})

describe('routes authenticated by client certificate (auth: certificate)', () => {
  let up: RecordingUpstream
  let dir: string
  let server: { cert: string; key: string }
  const clients: Record<string, { cert: string; key: string }> = {}
  let caName: string

  before(async () => {
    up = await startUpstream()
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cert-auth-'))
    server = await certificate('portcullis-server')
    writePems(dir, server)
    const ca = await certificateAuthority('services CA')
    writeFileSync(join(dir, 'client-ca.pem'), ca.cert)
    caName = 'CN=services CA'
    clients.billing = await issuedBy(ca, 'billing', [{ type: 6, value: 'spiffe://example.org/billing' }])
    clients.reports = await issuedBy(ca, 'reports', [{ type: 2, value: 'Reports.Internal' }])
    clients.admin = await issuedBy(ca, 'billing', [{ type: 6, value: 'spiffe://example.org/billing-admin' }])
    // Names the route admits, but issued by no CA the listener trusts.
    const selfSigned = await generate([{ name: 'commonName', value: 'billing' }], {
      keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: 'spiffe://example.org/billing' }] }],
    })
    clients.forged = { cert: selfSigned.cert, key: selfSigned.private }
  })
  after(() => up?.close())

  function config(): Record<string, unknown> {
    return baseConfig({
      listeners: [
        { host: '127.0.0.1', port: 0, tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', clientCertificates: 'request', clientCa: '${file:client-ca.pem}' } },
        { host: '127.0.0.1', port: 0 },
      ],
      upstreams: [{ id: 'u', url: up.url }],
      routes: [
        {
          id: 'internal',
          path: '/internal/**',
          methods: ['GET', 'POST'],
          upstream: 'u',
          auth: 'certificate',
          certificates: [{ uri: 'spiffe://example.org/billing' }, { dns: 'reports.internal' }],
        },
      ],
    })
  }

  async function start(t: { after(fn: () => unknown): void }): Promise<{ tls: string; plain: string; gw: StartedGateway }> {
    const gw = await startGateway(configIn(dir, config()), { waitReady: false })
    t.after(() => gw.stop())
    const [tls, plain] = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
    return { tls, plain, gw }
  }

  async function call(url: string, client: { cert: string; key: string } | undefined, headers: Record<string, string> = {}) {
    const dispatcher = new Agent({ connect: { ca: server.cert, ...(client ?? {}) } })
    try {
      const before = up.received.length
      const r = await fetch(`${url}/internal/orders`, { headers: { 'x-auth-subject': 'spoofed', 'x-auth-issuer': 'spoofed', ...headers }, dispatcher })
      const body = await r.text()
      return { status: r.status, type: r.headers.get('content-type'), body, reached: up.received.slice(before) }
    } finally {
      await dispatcher.close()
    }
  }

  test('an admitted certificate reaches the upstream, which learns who it is from the gateway, never from the client', async (t) => {
    const { tls } = await start(t)
    const billing = await call(tls, clients.billing)
    assert.equal(billing.status, 200, billing.body)
    assert.equal(billing.reached.length, 1)
    const h = billing.reached[0].headers
    assert.equal(h['x-auth-subject'], 'spiffe://example.org/billing')
    assert.equal(h['x-auth-issuer'], caName)
    assert.equal(h['x-auth-scopes'], undefined)
    assert.equal(h['x-auth-client-id'], undefined)
    assert.equal(h['client-cert'], `:${new X509Certificate(clients.billing.cert).raw.toString('base64')}:`)
    const reports = await call(tls, clients.reports)
    assert.equal(reports.status, 200, reports.body)
    assert.equal(reports.reached[0].headers['x-auth-subject'], 'reports.internal', 'a DNS name, compared and sent in lower case')
  })

  test('a verified certificate with other names: 403 ERR_AUTHZ_CERTIFICATE_NOT_ALLOWED, nothing forwarded, an event naming the certificate', async (t) => {
    const { tls, gw } = await start(t)
    const r = await call(tls, clients.admin)
    assert.equal(r.status, 403)
    assert.equal(r.type, 'application/problem+json')
    assert.equal(JSON.parse(r.body).code, 'ERR_AUTHZ_CERTIFICATE_NOT_ALLOWED')
    assert.equal(r.reached.length, 0)
    const event = await gw.waitFor((l) => l.event === 'authz.certificate_not_allowed')
    assert.equal(event.reason, 'certificate_not_allowed')
    assert.equal(event.subject, 'spiffe://example.org/billing-admin')
    assert.equal(event.certificate, thumbprintOf(clients.admin.cert))
    assert.equal(event.route, 'internal')
  })

  test('no certificate the listener verified: 403 ERR_AUTHN_CERTIFICATE_REQUIRED, whatever names it carries or token comes with it', async (t) => {
    const { tls, plain, gw } = await start(t)
    const cases = [
      [tls, clients.forged, {}, 'certificate_unverified', 'self-signed, naming an admitted URI'],
      [tls, undefined, {}, 'certificate_missing', 'no certificate'],
      [tls, undefined, { authorization: 'Bearer not-a-token' }, 'certificate_missing', 'a bearer token instead'],
      [plain, undefined, {}, 'certificate_missing', 'plain HTTP'],
    ] as const
    for (const [url, client, headers, reason, what] of cases) {
      const r = await call(url, client, headers)
      assert.equal(r.status, 403, what)
      assert.equal(JSON.parse(r.body).code, 'ERR_AUTHN_CERTIFICATE_REQUIRED', what)
      assert.equal(r.reached.length, 0, what)
      const event = await gw.waitFor((l) => l.event === 'authn.certificate_required' && l.reason === reason)
      if (client !== undefined) assert.equal(event.certificate, thumbprintOf(client.cert), what)
    }
    const forged = gw.lines.filter((l) => l.event === 'authn.certificate_required' && l.reason === 'certificate_unverified')
    assert.equal(forged.length, 1)
    assert.equal(forged[0].subject, undefined, 'an unverified certificate names no one')
  })

  test('upstreamToken: internal: the service gets a token the gateway minted for the certificate\'s subject, which it verifies', async (t) => {
    await cli(['keys', 'generate', '--out', join(dir, 'keys.json')])
    const base = config()
    const routes = base.routes as Array<Record<string, unknown>>
    const cfg = {
      ...base,
      internalTokens: { issuer: 'https://gateway.test', signingKeys: '${file:keys.json}', ttlSec: 30 },
      upstreams: [{ id: 'u', url: up.url, audience: 'orders' }],
      routes: [{ ...routes[0], upstreamToken: 'internal' }],
    }
    const gw = await startGateway(configIn(dir, cfg), { waitReady: false })
    t.after(() => gw.stop())
    const [tls, plain] = gw.lines.find((l) => l.msg === 'listening')!.urls as string[]
    const r = await call(tls, clients.billing, { authorization: 'Bearer whatever-the-client-sent' })
    assert.equal(r.status, 200, r.body)
    const authorization = String(r.reached[0].headers.authorization)
    assert.match(authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/)
    const verifier = gatewayTokenVerifier({ gatewayIssuer: 'https://gateway.test', audience: 'orders', jwksUri: `${plain}/.well-known/portcullis/jwks.json` })
    const identity = await verifier.verify(authorization)
    assert.equal(identity.subject, 'spiffe://example.org/billing')
    const payload = JSON.parse(Buffer.from(authorization.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>
    assert.equal(payload.sub, 'spiffe://example.org/billing')
    assert.equal(payload.orig_iss, caName)
    assert.equal(payload.aud, 'orders')
    assert.equal(payload.scope, undefined)
    assert.equal(payload.client_id, undefined)
    assert.ok((payload.exp as number) * 1000 <= Date.parse(new X509Certificate(clients.billing.cert).validTo))
  })

  test('check-config refuses a certificate route without names, names on a token route, issuers on a certificate route, and no listener to verify certificates', async () => {
    const base = config()
    const routes = base.routes as Array<Record<string, unknown>>
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...base, routes: [{ ...routes[0], certificates: undefined }] }, /\/routes\/0\/auth\s.*no "certificates"/],
      [{ ...base, issuers: [{ id: 'idp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks', audiences: ['api'] }], routes: [{ ...routes[0], auth: 'required' }] }, /\/routes\/0\/certificates\s.*only .* auth: certificate/],
      [{ ...base, issuers: [{ id: 'idp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/jwks', audiences: ['api'] }], routes: [{ ...routes[0], issuers: ['idp'] }] }, /\/routes\/0\/issuers\s.*issuers apply to tokens/],
      [{ ...base, listeners: [{ host: '127.0.0.1', port: 0 }] }, /\/routes\/0\/auth\s.*no listener verifies client certificates/],
      [{ ...base, routes: [{ ...routes[0], certificates: [{ uri: 'spiffe://x/a', dns: 'a.internal' }] }] }, /\/routes\/0\/certificates\/0/],
    ]
    for (const [cfg, message] of cases) {
      const r = await cli(['check-config', configIn(dir, cfg)])
      assert.equal(r.code, 1, r.stdout)
      assert.match(r.stderr, message)
    }
    const ok = await cli(['check-config', configIn(dir, base)])
    assert.equal(ok.code, 0, ok.stderr)
  })
})

describe('client certificate revocation (tls.clientCrl)', () => {
  const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  let up: RecordingUpstream
  let dir: string
  let server: { cert: string; key: string }
  let ca: { cert: string; key: string }
  let good: { cert: string; key: string }
  let revoked: { cert: string; key: string }

  /** A CRL the CA signs (RFC 5280 §5), listing these certificates, valid from a minute ago to nextUpdate. */
  async function crlOf(listed: Array<{ cert: string }>, nextUpdate: Date): Promise<string> {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto)
    const signingKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(ca.key.replace(/-----[^-]+-----|\s/g, ''), 'base64'), RSA, false, ['sign'])
    const crl = await x509.X509CrlGenerator.create({
      issuer: new x509.X509Certificate(ca.cert).subject,
      thisUpdate: new Date(Date.now() - 60_000),
      nextUpdate,
      entries: listed.map((c) => ({ serialNumber: new x509.X509Certificate(c.cert).serialNumber, revocationDate: new Date(Date.now() - 60_000) })),
      signingAlgorithm: RSA,
      signingKey: signingKey as unknown as CryptoKey,
    })
    // RFC 7468 §5 labels a CRL "X509 CRL", the label OpenSSL reads.
    const base64 = Buffer.from(crl.rawData).toString('base64').replace(/.{64}/g, '$&\n')
    return `-----BEGIN X509 CRL-----\n${base64}\n-----END X509 CRL-----\n`
  }
  const inADay = () => new Date(Date.now() + 86_400_000)

  before(async () => {
    up = await startUpstream()
    dir = mkdtempSync(join(tmpdir(), 'portcullis-crl-'))
    server = await certificate('portcullis-server')
    writePems(dir, server)
    ca = await certificateAuthority('services CA')
    writeFileSync(join(dir, 'client-ca.pem'), ca.cert)
    good = await issuedBy(ca, 'billing', [{ type: 6, value: 'spiffe://example.org/billing' }])
    revoked = await issuedBy(ca, 'reports', [{ type: 6, value: 'spiffe://example.org/reports' }])
  })
  after(() => up?.close())

  function config(clientCertificates: 'request' | 'require'): Record<string, unknown> {
    return baseConfig({
      listeners: [
        {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: '${file:cert.pem}', key: '${file:key.pem}', clientCertificates, clientCa: '${file:client-ca.pem}', clientCrl: '${file:client.crl}' },
        },
      ],
      upstreams: [{ id: 'u', url: up.url }],
      routes: [
        { id: 'internal', path: '/internal/**', methods: ['GET'], upstream: 'u', auth: 'certificate', certificates: [{ uri: 'spiffe://example.org/billing' }, { uri: 'spiffe://example.org/reports' }] },
        { path: '/p/**', methods: ['GET'], upstream: 'u', auth: 'public' },
      ],
    })
  }

  async function start(t: { after(fn: () => unknown): void }, clientCertificates: 'request' | 'require'): Promise<{ url: string; gw: StartedGateway }> {
    const gw = await startGateway(configIn(dir, config(clientCertificates)), { waitReady: false })
    t.after(() => gw.stop())
    return { url: (gw.lines.find((l) => l.msg === 'listening')!.urls as string[])[0], gw }
  }

  /** Status and problem code of GET path with this client certificate, and the Client-Cert the upstream got. */
  async function get(url: string, path: string, client: { cert: string; key: string }) {
    const dispatcher = new Agent({ connect: { ca: server.cert, ...client } })
    try {
      const before = up.received.length
      const r = await fetch(`${url}${path}`, { dispatcher })
      const body = await r.text()
      const reached = up.received.slice(before)
      return { status: r.status, code: r.status === 200 ? undefined : (JSON.parse(body) as { code: string }).code, clientCert: reached[0]?.headers['client-cert'] }
    } finally {
      await dispatcher.close()
    }
  }

  test('a revoked certificate is not verified: a certificate route refuses it (certificate_revoked), no Client-Cert is sent; the others pass', async (t) => {
    writeFileSync(join(dir, 'client.crl'), await crlOf([revoked], inADay()))
    const { url, gw } = await start(t, 'request')
    assert.deepEqual(await get(url, '/internal/x', good), { status: 200, code: undefined, clientCert: `:${new X509Certificate(good.cert).raw.toString('base64')}:` })
    assert.deepEqual(await get(url, '/internal/x', revoked), { status: 403, code: 'ERR_AUTHN_CERTIFICATE_REQUIRED', clientCert: undefined })
    const event = await gw.waitFor((l) => l.event === 'authn.certificate_required')
    assert.equal(event.reason, 'certificate_revoked')
    assert.equal(event.certificate, thumbprintOf(revoked.cert))
    assert.deepEqual(await get(url, '/p/x', revoked), { status: 200, code: undefined, clientCert: undefined })
  })

  test('with clientCertificates: require, a revoked certificate cannot connect', async (t) => {
    writeFileSync(join(dir, 'client.crl'), await crlOf([revoked], inADay()))
    const { url } = await start(t, 'require')
    assert.equal((await get(url, '/p/x', good)).status, 200)
    await assert.rejects(get(url, '/p/x', revoked))
  })

  test('a CRL past its nextUpdate verifies no certificate (fail closed); a reload with a fresh one restores them and revokes what it lists', async (t) => {
    writeFileSync(join(dir, 'client.crl'), await crlOf([], new Date(Date.now() - 30_000)))
    const { url, gw } = await start(t, 'request')
    assert.deepEqual(await get(url, '/internal/x', good), { status: 403, code: 'ERR_AUTHN_CERTIFICATE_REQUIRED', clientCert: undefined })
    writeFileSync(join(dir, 'client.crl'), await crlOf([good], inADay()))
    gw.child.kill('SIGHUP')
    await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
    assert.equal((await get(url, '/internal/x', revoked)).status, 200, 'the fresh CRL does not list it')
    assert.deepEqual(await get(url, '/internal/x', good), { status: 403, code: 'ERR_AUTHN_CERTIFICATE_REQUIRED', clientCert: undefined })
  })

  test('check-config refuses clientCrl without clientCa, and one that is no CRL', async () => {
    writeFileSync(join(dir, 'client.crl'), await crlOf([], inADay()))
    const base = config('request')
    const listener = (base.listeners as Array<Record<string, Record<string, unknown>>>)[0]
    const withTls = (tls: Record<string, unknown>) => ({ ...base, routes: [(base.routes as unknown[])[1]], listeners: [{ ...listener, tls: { ...listener.tls, ...tls } }] })
    writeFileSync(join(dir, 'not.crl'), ca.cert)
    for (const [cfg, message] of [
      [withTls({ clientCa: undefined, clientCertificates: 'none' }), /\/listeners\/0\/tls\s.*clientCrl needs clientCa/],
      [withTls({ clientCrl: '${file:not.crl}' }), /\/listeners\/0\/tls\s.*clientCrl holds no PEM revocation list/],
    ] as const) {
      const r = await cli(['check-config', configIn(dir, cfg)])
      assert.equal(r.code, 1, r.stdout)
      assert.match(r.stderr, message)
    }
    const ok = await cli(['check-config', configIn(dir, base)])
    assert.equal(ok.code, 0, ok.stderr)
  })
})
