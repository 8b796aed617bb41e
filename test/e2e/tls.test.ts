import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type ConnectionOptions } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { generate } from 'selfsigned'
import { Agent, fetch } from 'undici'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'

/** A self-signed certificate for 127.0.0.1 and localhost, with its key, in PEM. */
async function certificate(commonName: string): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  })
  return { cert: pems.cert, key: pems.private }
}

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
  assert.deepEqual(await handshake(url), { fingerprint: fingerprintOf(pems.cert), protocol: 'TLSv1.3' })
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
