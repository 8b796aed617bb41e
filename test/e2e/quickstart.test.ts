import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// The quick start binds the fixed ports the README tells a newcomer to curl.
const PORTS = [8080, 9000, 9001, 9002]
const QUICKSTART = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'quickstart.js')

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

test('npm start: the README flow works — token from the dev IdP, allowed GET verified by gateway and service, denied POST, denied without token, refused by the service around the gateway', async (t) => {
  const free = await Promise.all(PORTS.map(portFree))
  if (free.includes(false)) {
    t.skip(`quick-start ports ${PORTS.join(', ')} are in use on this machine`)
    return
  }
  const child = spawn(process.execPath, [QUICKSTART], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGTERM')))))
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('quick start did not print its banner:\n' + out)), 30_000)
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c
      if (out.includes('Portcullis is running')) (clearTimeout(timer), resolve())
    })
    child.once('exit', (code) => reject(new Error(`quick start exited with ${code}:\n${out}`)))
  })
  assert.match(out, /curl -i -H "Authorization: Bearer \$TOKEN" http:\/\/127\.0\.0\.1:8080\/orders\/42/)

  const tokenRes = await fetch('http://127.0.0.1:9000/token', {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from('demo-reader:demo-reader-secret').toString('base64'), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=orders:read',
  })
  assert.equal(tokenRes.status, 200)
  const { access_token: token } = (await tokenRes.json()) as { access_token: string }

  const allowed = await fetch('http://127.0.0.1:8080/orders/42', { headers: { authorization: `Bearer ${token}`, 'x-auth-subject': 'admin' } })
  assert.equal(allowed.status, 200)
  const echoed = (await allowed.json()) as { path: string; headers: Record<string, string>; identity: Record<string, unknown> }
  assert.equal(echoed.path, '/orders/42')
  assert.equal(echoed.headers['x-auth-subject'], 'demo-reader', 'the verified subject, not the spoofed one')
  // Verified a second time, by the service, from the internal token the gateway minted for it.
  assert.equal(echoed.identity.subject, 'demo-reader')
  assert.equal(echoed.identity.tokenIssuer, 'http://127.0.0.1:8080')
  assert.equal(echoed.identity.actor, 'http://127.0.0.1:8080')
  assert.equal(echoed.identity.callerIssuer, 'http://127.0.0.1:9000')

  const denied = await fetch('http://127.0.0.1:8080/orders', { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  assert.equal(denied.status, 403)
  assert.match(denied.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/)

  const anonymous = await fetch('http://127.0.0.1:8080/orders/42')
  assert.equal(anonymous.status, 401)
  assert.equal(((await anonymous.json()) as { code: string }).code, 'ERR_AUTHN_MISSING')

  // Around the gateway, straight to the service, even with a valid IdP token: refused there.
  const bypass = await fetch('http://127.0.0.1:9001/orders/42', { headers: { authorization: `Bearer ${token}` } })
  assert.equal(bypass.status, 401)
  assert.equal(((await bypass.json()) as { code: string }).code, 'ERR_AUTHN_INVALID_TOKEN')
})

test('npm start with a quick-start port already taken says which one and why, stops what it started and exits 1, without a stack trace', async (t) => {
  const free = await Promise.all(PORTS.map(portFree))
  if (free.includes(false)) {
    t.skip(`quick-start ports ${PORTS.join(', ')} are in use on this machine`)
    return
  }
  const squatter = createServer()
  await new Promise<void>((r) => squatter.listen(9001, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => squatter.close(() => r())))
  const child = spawn(process.execPath, [QUICKSTART], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => new Promise<void>((r) => (child.exitCode !== null ? r() : (child.once('exit', () => r()), child.kill('SIGTERM')))))
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c))
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
  assert.equal(code, 1, out)
  assert.match(out, /cannot listen on 127\.0\.0\.1:9001 \(orders example service\): address already in use \(EADDRINUSE\)/)
  assert.doesNotMatch(out, /Unhandled|\n\s+at /, 'no stack trace')
  assert.doesNotMatch(out, /Portcullis is running/)
  // The identity provider it had started on 9000 is stopped again.
  assert.equal(await portFree(9000), true)
})
