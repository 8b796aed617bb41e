import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect, createServer as createNetServer } from 'node:net'
import { baseConfig, CLI, startGateway, writeConfig, type StartedGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
import { startHeldJwks, startKeyServer } from '../helpers/keys.js'
import { freePort } from '../helpers/net.js'

const routeTo = (url: string, path: string) =>
  baseConfig({ upstreams: [{ id: 'u', url }], routes: [{ path, methods: ['GET', 'POST'], upstream: 'u', auth: 'public' }] })

/** Runs the built CLI until it exits; a process still running after a generous bound is killed and fails the test. */
function runToExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the process did not exit; stdout: ${stdout} stderr: ${stderr}`))
    }, 30_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

test('SIGHUP swaps in a valid new config without dropping a keep-alive connection', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(routeTo(up.url, '/a/**'))
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  // One raw keep-alive connection used before and after the reload: if the reload closed it, the
  // second request could not be answered on it.
  const { hostname, port } = new URL(gw.url)
  const sock = connect(Number(port), hostname)
  sock.on('error', () => {})
  let received = ''
  sock.setEncoding('utf8').on('data', (c: string) => (received += c))
  const ask = async (path: string): Promise<number> => {
    received = ''
    sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
    for (let i = 0; i < 200 && !/\r\n\r\n[\s\S]*\}$|content-length: 0\r\n\r\n$/i.test(received); i++) await new Promise((r) => setTimeout(r, 25))
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1])
  }
  await new Promise((r) => sock.once('connect', r))
  assert.equal(await ask('/a/1'), 200)
  assert.equal(await ask('/b/1'), 404)
  writeFileSync(gw.configPath, JSON.stringify(routeTo(up.url, '/b/**')))
  gw.child.kill('SIGHUP')
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
  assert.equal(await ask('/b/1'), 200, 'the same connection serves the new config')
  assert.equal(await ask('/a/1'), 404)
  assert.equal(sock.destroyed, false)
  sock.destroy()
})

test('readiness stays false and protected routes answer 503 until the issuer keys can be loaded', async (t) => {
  const ks = await startKeyServer()
  ks.down = true
  const up = await startUpstream()
  const gw = await startGateway(
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
      upstreams: [{ id: 'u', url: up.url }],
      routes: [{ path: '/p', methods: ['GET'], upstream: 'u', auth: 'required' }],
    }),
    { waitReady: false },
  )
  t.after(async () => {
    await gw.stop()
    await up.close()
    await ks.close()
  })
  const token = await ks.sign()
  assert.equal((await fetch(gw.url + '/healthz')).status, 200, 'alive')
  assert.equal((await fetch(gw.url + '/readyz')).status, 503, 'not ready without keys')
  const r = await fetch(gw.url + '/p', { headers: { authorization: `Bearer ${token}` } })
  assert.equal(r.status, 503)
  assert.equal(((await r.json()) as { code: string }).code, 'ERR_AUTHN_IDP_UNAVAILABLE')
  assert.ok(r.headers.get('retry-after'))
  assert.equal(up.received.length, 0)
  ks.down = false
  let ready = 0
  for (let i = 0; i < 300 && ready !== 200; i++) {
    ready = (await fetch(gw.url + '/readyz')).status
    if (ready !== 200) await new Promise((res) => setTimeout(res, 100))
  }
  assert.equal(ready, 200, 'ready once the provider answers')
  assert.equal((await fetch(gw.url + '/p', { headers: { authorization: `Bearer ${token}` } })).status, 200)
})

test('a reload while the identity provider is down keeps the keys the running config loaded: ready, and tokens still verify', async (t) => {
  const ks = await startKeyServer()
  const up = await startUpstream()
  const config = (paths: string[]) =>
    baseConfig({
      issuers: [{ id: 'test', issuer: ks.issuer, discoveryUrl: ks.discoveryUrl, audiences: ['api://test'] }],
      upstreams: [{ id: 'u', url: up.url }],
      routes: paths.map((path) => ({ path, methods: ['GET'], upstream: 'u', auth: 'required' })),
    })
  const gw = await startGateway(config(['/p']))
  t.after(async () => {
    await gw.stop()
    await up.close()
    await ks.close()
  })
  const token = await ks.sign()
  assert.equal((await fetch(gw.url + '/p', { headers: { authorization: `Bearer ${token}` } })).status, 200)
  ks.down = true
  writeFileSync(gw.configPath, JSON.stringify(config(['/p', '/q'])))
  gw.child.kill('SIGHUP')
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
  const failed = await gw.waitFor((l) => l.event === 'keys.refresh_failed' && l.source === 'initial')
  assert.equal(failed.keptKeys, 1)
  assert.equal((await fetch(gw.url + '/readyz')).status, 200, 'still ready')
  // The new config's token cache is empty: these verify against the keys taken over.
  const fresh = await ks.sign({ jti: 'after-reload' })
  for (const [path, bearer] of [['/q', fresh], ['/p', token]] as const) {
    assert.equal((await fetch(gw.url + path, { headers: { authorization: `Bearer ${bearer}` } })).status, 200, path)
  }
})

test('an invalid config on reload is rejected with its errors logged and the running config keeps serving', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(routeTo(up.url, '/a/**'))
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  writeFileSync(gw.configPath, JSON.stringify({ ...routeTo(up.url, '/b/**'), routes: [{ path: '/b', upstream: 'nope', auth: 'sometimes' }] }))
  gw.child.kill('SIGHUP')
  const rejected = await gw.waitFor((l) => l.event === 'config.rejected')
  assert.ok(Array.isArray(rejected.errors) && (rejected.errors as unknown[]).length > 0)
  assert.match(JSON.stringify(rejected.errors), /auth/)
  assert.equal((await fetch(gw.url + '/a/1')).status, 200)
  assert.equal((await fetch(gw.url + '/b/1')).status, 404)
})

test('a reload of a file with alias errors (a missing anchor, an alias bomb) is rejected without a secret in the message, and the running config keeps serving', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(routeTo(up.url, '/a/**'))
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const secret = `sekret-${randomBytes(16).toString('hex')}`
  // Files the YAML library throws on while building the document (the loader turns that into
  // located errors; before, the exception ended the process): an alias without its anchor, and
  // an alias bomb past the loader's expansion budget.
  const throwing = [
    `version: 1\nnote: ${secret}\nlisteners: *nope\n`,
    // Ten times ten times … seven levels: 10^7 values from a few hundred bytes.
    `version: 1\nnote: &l0 ${secret}\n${[1, 2, 3, 4, 5, 6, 7].map((n) => `l${n}: &l${n} [${Array(10).fill(`*l${n - 1}`).join(', ')}]`).join('\n')}\n`,
  ]
  for (const [i, text] of throwing.entries()) {
    writeFileSync(gw.configPath, text)
    gw.child.kill('SIGHUP')
    const rejected = await gw.waitFor((l) => l.event === 'config.rejected' && gw.lines.filter((x) => x.event === 'config.rejected').length === i + 1)
    assert.ok(Array.isArray(rejected.errors) && (rejected.errors as unknown[]).length > 0, JSON.stringify(rejected))
    assert.equal((await fetch(gw.url + '/a/1')).status, 200, 'the running config keeps serving')
  }
  assert.ok(!JSON.stringify(gw.lines).includes(secret) && !gw.stderr().includes(secret), 'no part of the file is echoed')
  // Reloading still works afterwards.
  writeFileSync(gw.configPath, JSON.stringify(routeTo(up.url, '/b/**')))
  gw.child.kill('SIGHUP')
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
  assert.equal((await fetch(gw.url + '/b/1')).status, 200)
  assert.equal(gw.child.exitCode, null)
})

test('a SIGHUP during a reload runs one more reload after it, so the last written config wins', async (t) => {
  const up = await startUpstream()
  const ks = await startKeyServer()
  // A JWKS that answers only when told to: the first reload waits for its keys.
  const jwks = await startHeldJwks(ks)
  const gw = await startGateway(routeTo(up.url, '/a/**'))
  t.after(async () => {
    jwks.release()
    await gw.stop()
    jwks.close()
    await ks.close()
    await up.close()
  })
  writeFileSync(
    gw.configPath,
    JSON.stringify(
      baseConfig({
        issuers: [{ id: 'slow', issuer: ks.issuer, jwksUri: jwks.url, audiences: ['api://test'] }],
        upstreams: [{ id: 'u', url: up.url }],
        routes: [{ path: '/b/**', methods: ['GET'], upstream: 'u', auth: 'required' }],
      }),
    ),
  )
  gw.child.kill('SIGHUP')
  // The first reload has read its file and waits for the keys: the second file comes now.
  await jwks.asked
  writeFileSync(gw.configPath, JSON.stringify(routeTo(up.url, '/c/**')))
  gw.child.kill('SIGHUP')
  // Both signals are handled once the slow reload is under way; let it finish.
  await gw.waitFor((l) => /reload requested during a reload/.test(String(l.msg)))
  jwks.release()
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true && l.issuers === 0)
  assert.equal((await fetch(gw.url + '/c/1')).status, 200, 'the second config serves')
  assert.equal((await fetch(gw.url + '/b/1')).status, 404)
})

test('a file with an alias error is refused at start: exit 1, config rejected, no stack trace or file contents', async () => {
  const secret = `sekret-${randomBytes(16).toString('hex')}`
  const r = await runToExit(['start', '--config', writeConfig(`version: 1\nnote: ${secret}\nlisteners: *nope\n`, 'portcullis.yaml')])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /config rejected/)
  assert.doesNotMatch(r.stderr, /^\s+at /m)
  assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret))
})

describe('a start that cannot open every listener exits 1 and leaves nothing listening', () => {
  const refused = (port: number) =>
    new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      sock.once('connect', () => (sock.destroy(), resolve(false)))
      sock.once('error', () => resolve(true))
    })

  for (const [what, setup] of [
    ['a port another process holds', async (free: number, taken: number) => ({ listeners: [{ host: '127.0.0.1', port: free }, { host: '127.0.0.1', port: taken }] })],
    // The second listener is the one that fails: the first, already open, must be closed again.
  ] as const) {
    test(what, async (t) => {
      const holder = createNetServer()
      await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
      t.after(() => holder.close())
      const taken = (holder.address() as AddressInfo).port
      const free = await freePort()
      const up = await startUpstream()
      t.after(() => up.close())
      const r = await runToExit(['start', '--config', writeConfig({ ...routeTo(up.url, '/a'), ...(await setup(free, taken)) })])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /address already in use/)
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:(${free}|${taken})\\b`))
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'a message, not a stack trace')
      assert.equal(await refused(free), true, 'the listener that did bind was closed')
    })
  }
})

test('two listeners, or the metrics listener, on one port are refused before anything opens', async (t) => {
  const up = await startUpstream()
  t.after(() => up.close())
  const free = await freePort()
  for (const [extra, path] of [
    [{ listeners: [{ host: '127.0.0.1', port: free }, { host: '127.0.0.1', port: free }] }, '/listeners/1/port'],
    [{ listeners: [{ host: '127.0.0.1', port: free }], metrics: { enabled: true, host: '127.0.0.1', port: free } }, '/metrics/port'],
  ] as const) {
    const r = await runToExit(['start', '--config', writeConfig({ ...routeTo(up.url, '/a'), ...extra })])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, new RegExp(`${path}  127\\.0\\.0\\.1:${free} is also used by /listeners/0`))
  }
})

test('a reload that changes settings only a restart applies names them in a warning; the rest applies', async (t) => {
  const up = await startUpstream()
  const base = routeTo(up.url, '/a/**')
  const gw = await startGateway(base)
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const next = routeTo(up.url, '/b/**')
  writeFileSync(gw.configPath, JSON.stringify({ ...next, server: { ...(next.server as object), healthPath: '/alive', maxConnections: 77 } }))
  gw.child.kill('SIGHUP')
  const warning = await gw.waitFor((l) => Array.isArray(l.fields) && String(l.msg).includes('restart only'))
  assert.deepEqual(warning.fields, ['server.healthPath', 'server.maxConnections'])
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
  assert.equal((await fetch(gw.url + '/b/1')).status, 200, 'the routes changed')
  assert.equal((await fetch(gw.url + '/healthz')).status, 200, 'the health path did not')
})

test('with --watch an edited config file is reloaded without a signal', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(routeTo(up.url, '/a/**'), { args: ['--watch'] })
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  writeFileSync(gw.configPath, JSON.stringify(routeTo(up.url, '/c/**')))
  await gw.waitFor((l) => l.event === 'config.loaded' && l.reload === true)
  assert.equal((await fetch(gw.url + '/c/1')).status, 200)
})

test('with --watch every atomic replace of the file (write a copy, rename it over) is reloaded', async (t) => {
  const up = await startUpstream()
  const gw = await startGateway(routeTo(up.url, '/a/**'), { args: ['--watch'] })
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const reloads = () => gw.lines.filter((l) => l.event === 'config.loaded' && l.reload === true).length
  // As editors, sed -i and config management do: the file name ends up on a new inode each time.
  for (const [i, path] of ['/b/**', '/c/**', '/d/**'].entries()) {
    writeFileSync(`${gw.configPath}.tmp`, JSON.stringify(routeTo(up.url, path)))
    renameSync(`${gw.configPath}.tmp`, gw.configPath)
    await gw.waitFor(() => reloads() === i + 1)
    assert.equal((await fetch(gw.url + path.replace('**', '1'))).status, 200, `replace ${i + 1} serves`)
  }
  assert.equal((await fetch(gw.url + '/c/1')).status, 404)
})

test('with --watch a config path that is a symlink into another folder follows the target: edits and replaces of it reload', async (t) => {
  const up = await startUpstream()
  const root = mkdtempSync(join(tmpdir(), 'portcullis-watch-'))
  mkdirSync(join(root, 'etc'))
  mkdirSync(join(root, 'srv'))
  const target = join(root, 'srv', 'real.json')
  writeFileSync(target, JSON.stringify(routeTo(up.url, '/a/**')))
  const link = join(root, 'etc', 'portcullis.json')
  symlinkSync(join('..', 'srv', 'real.json'), link)
  const gw = await startGateway(link, { args: ['--watch'] })
  t.after(async () => {
    await gw.stop()
    await up.close()
    rmSync(root, { recursive: true, force: true })
  })
  const reloads = () => gw.lines.filter((l) => l.event === 'config.loaded' && l.reload === true).length
  // In place, in the target's folder (the link's folder sees nothing of it).
  writeFileSync(target, JSON.stringify(routeTo(up.url, '/b/**')))
  await gw.waitFor(() => reloads() === 1)
  assert.equal((await fetch(gw.url + '/b/1')).status, 200)
  // Replaced by rename in the target's folder.
  writeFileSync(`${target}.tmp`, JSON.stringify(routeTo(up.url, '/c/**')))
  renameSync(`${target}.tmp`, target)
  await gw.waitFor(() => reloads() === 2)
  assert.equal((await fetch(gw.url + '/c/1')).status, 200)
})

test('SIGTERM lets an in-flight request finish, refuses new work, and exits 0', async (t) => {
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  let arrived!: () => void
  const arrivedP = new Promise<void>((r) => (arrived = r))
  let arrivals = 0
  const up = await startUpstream((_req, res) => {
    arrivals++
    arrived()
    void released.then(() => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('finished')
    })
  })
  const gw = await startGateway(routeTo(up.url, '/slow'))
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const inflight = fetch(gw.url + '/slow')
  await arrivedP
  const exit = gw.stop('SIGTERM')
  await gw.waitFor((l) => l.event === 'gateway.stopping')
  // New connections are no longer accepted while draining: refused, not held (a held request
  // would only end by this bound, which is not what is asserted).
  await assert.rejects(fetch(gw.url + '/slow', { signal: AbortSignal.timeout(5000) }), (e: Error) => e.name !== 'TimeoutError')
  release()
  const res = await inflight
  assert.equal(res.status, 200)
  assert.equal(await res.text(), 'finished')
  assert.equal(arrivals, 1, 'only the in-flight request reached the upstream')
  assert.equal(await exit, 0)
})

test('health answers 200, and a client that never finishes its headers is disconnected', async (t) => {
  const up = await startUpstream()
  const cfg = { ...routeTo(up.url, '/a'), server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } }
  const gw = await startGateway(cfg)
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  assert.equal((await fetch(gw.url + '/healthz')).status, 200)
  const { hostname, port } = new URL(gw.url)
  const sock = connect(Number(port), hostname)
  sock.write('GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  let received = ''
  sock.on('data', (c: Buffer) => (received += c.toString()))
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 20_000)
    sock.on('close', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
  sock.destroy()
  assert.equal(closed, true, 'the gateway closed the slow connection')
  assert.ok(received === '' || received.startsWith('HTTP/1.1 408'), received)
  assert.equal(up.received.length, 0)
})

test('connections over maxConnections are refused while the others keep working', async (t) => {
  const up = await startUpstream()
  // waitReady: false, so no pooled readiness probe connection occupies the single slot.
  const gw = await startGateway({ ...routeTo(up.url, '/a'), server: { maxConnections: 1 } }, { waitReady: false })
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  const { hostname, port } = new URL(gw.url)
  const first = connect(Number(port), hostname)
  first.on('error', () => {})
  await new Promise((r) => first.once('connect', r))
  first.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
  await new Promise((r) => first.once('data', r))
  const second = connect(Number(port), hostname)
  second.on('error', () => {})
  const secondClosed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 10_000)
    second.on('close', () => (clearTimeout(timer), resolve(true)))
    second.on('error', () => {})
    second.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
  })
  assert.equal(secondClosed, true)
  first.destroy()
})

/**
 * A raw client connection: everything it received (latin1), a wait for what it receives, and its
 * close. A generous safety net turns a gateway that never answers into a failure, not a hang.
 */
async function rawConnection(url: string) {
  const { hostname, port } = new URL(url)
  const sock = connect(Number(port), hostname)
  sock.on('error', () => {})
  let received = ''
  let check = (): void => {}
  sock.setEncoding('latin1').on('data', (c: string) => {
    received += c
    check()
  })
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the connection stayed open; received: ${JSON.stringify(received)}`)), 20_000)
    sock.once('close', () => (clearTimeout(timer), resolve()))
  })
  closed.catch(() => {})
  await new Promise((r) => sock.once('connect', r))
  return {
    write: (text: string) => sock.write(text, 'latin1'),
    /** Half-closes: the client has sent all it will, and still reads. */
    end: () => sock.end(),
    received: () => received,
    closed,
    /** Resolves once what was received satisfies `pred`; rejects if the connection closes first. */
    until(pred: (received: string) => boolean): Promise<void> {
      return new Promise((resolve, reject) => {
        check = () => {
          if (pred(received)) resolve()
        }
        check()
        void closed.then(() => reject(new Error(`closed before the expected bytes; received: ${JSON.stringify(received)}`)), reject)
      })
    },
  }
}

const statusLines = (text: string) => text.match(/HTTP\/1\.1 \d{3}/g) ?? []

test('with maxRequestsPerSocket the last request\'s response closes the connection, and requests pipelined behind it are never answered or forwarded', async (t) => {
  const up = await startUpstream((req, res) => res.end(`ok ${req.url}`))
  const gw = await startGateway({ ...routeTo(up.url, '/a/**'), server: { maxRequestsPerSocket: 2 } })
  t.after(async () => {
    await gw.stop()
    await up.close()
  })
  // One request at a time first: the second response says close, and the connection ends.
  const c = await rawConnection(gw.url)
  c.write('GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\n')
  await c.until((r) => r.endsWith('ok /a/1'))
  assert.doesNotMatch(c.received(), /\r\nconnection: close\r\n/i)
  c.write('GET /a/2 HTTP/1.1\r\nHost: x\r\n\r\n')
  await c.closed
  assert.match(c.received(), /ok \/a\/2$/)
  assert.equal((c.received().match(/\r\nconnection: close\r\n/gi) ?? []).length, 1)
  // Four pipelined at once: two answers, the second saying close; the other two never start.
  const p = await rawConnection(gw.url)
  p.write(['/a/3', '/a/4', '/a/5', '/a/6'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''))
  await p.closed
  assert.deepEqual(statusLines(p.received()), ['HTTP/1.1 200', 'HTTP/1.1 200'], p.received())
  assert.match(p.received(), /ok \/a\/4$/)
  await new Promise((r) => setTimeout(r, 200))
  assert.deepEqual(up.received.map((r) => r.url), ['/a/1', '/a/2', '/a/3', '/a/4'])
})

describe('bytes the HTTP parser refuses, and request heads that time out', () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  const arrivals = new Map<string, () => void>()
  /** Resolves when the upstream has the request for `path` (register before sending it). */
  const arrival = (path: string) => new Promise<void>((r) => arrivals.set(path, r))

  before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/p/stream') {
        // A Content-Length body whose second half is never sent: the response stays in flight.
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20' })
        res.write('0123456789')
      } else if (req.url === '/p/hold') {
        // Never answered: the request ran upstream, its response is owed.
      } else {
        res.end('ok')
      }
      arrivals.get(req.url!)?.()
    })
    gw = await startGateway({ ...routeTo(up.url, '/p/**'), server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } })
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  for (const [what, bytes] of [
    ['a request line the parser refuses', 'BAD\x01 REQUEST\r\n\r\n'],
    ['a pipelined request head that never completes (408)', 'GET /p/ok HTTP/1.1\r\nHost: x\r\nX-Slow: '],
  ]) {
    test(`while a proxied body streams, ${what} closes the connection instead of a status line landing in the body`, async () => {
      const c = await rawConnection(gw.url)
      c.write('GET /p/stream HTTP/1.1\r\nHost: x\r\n\r\n')
      // The response is under way once its first body bytes reached the client.
      await c.until((r) => r.endsWith('\r\n\r\n0123456789'))
      c.write(bytes)
      await c.closed
      const received = c.received()
      assert.deepEqual(statusLines(received), ['HTTP/1.1 200'], JSON.stringify(received))
      assert.ok(received.endsWith('\r\n\r\n0123456789'), `nothing follows the partial body: ${JSON.stringify(received)}`)
    })
  }

  test('after the request reached the upstream, bad bytes close the connection instead of answering 400 for it', async () => {
    const c = await rawConnection(gw.url)
    const upstreamHasIt = arrival('/p/hold')
    c.write('GET /p/hold HTTP/1.1\r\nHost: x\r\n\r\n')
    await upstreamHasIt
    c.write('BAD\x01 REQUEST\r\n\r\n')
    await c.closed
    assert.equal(c.received(), '', 'the client would read a 400 as the answer to the request the upstream ran')
  })

  test('when no earlier request\'s response is owed, they are still answered before the connection closes', async () => {
    // A new connection.
    const fresh = await rawConnection(gw.url)
    fresh.write('BAD\x01 REQUEST\r\n\r\n')
    await fresh.closed
    assert.match(fresh.received(), /^HTTP\/1\.1 400 /)
    // Like every refusal: problem+json with a stable code, and the connection closed.
    const problemOf = (raw: string) => {
      const [head, body] = [raw.slice(0, raw.indexOf('\r\n\r\n')), raw.slice(raw.indexOf('\r\n\r\n') + 4)]
      assert.match(head, /\r\ncontent-type: application\/problem\+json\r\n/)
      assert.match(head, /\r\nconnection: close\r\n/)
      assert.match(head, new RegExp(`\r\ncontent-length: ${Buffer.byteLength(body)}(\r\n|$)`))
      return JSON.parse(body) as { code: string; status: number }
    }
    assert.equal(problemOf(fresh.received()).code, 'ERR_HTTP_BAD_REQUEST')
    const huge = await rawConnection(gw.url)
    huge.write(`GET /p/ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    await huge.closed
    assert.match(huge.received(), /^HTTP\/1\.1 431 /)
    assert.deepEqual(
      [problemOf(huge.received()).code, problemOf(huge.received()).status],
      ['ERR_HTTP_HEADERS_TOO_LARGE', 431],
    )
    // An idle keep-alive connection whose previous response is complete.
    const idle = await rawConnection(gw.url)
    idle.write('GET /p/ok HTTP/1.1\r\nHost: x\r\n\r\n')
    await idle.until((r) => r.endsWith('\r\n\r\nok'))
    idle.write('BAD\x01 REQUEST\r\n\r\n')
    await idle.closed
    assert.deepEqual(statusLines(idle.received()), ['HTTP/1.1 200', 'HTTP/1.1 400'])
    // A request whose own body is malformed, before anything of its response was written: the
    // 400 is its answer.
    const body = await rawConnection(gw.url)
    body.write('POST /p/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n')
    await body.closed
    assert.match(body.received(), /^HTTP\/1\.1 400 /)
    assert.deepEqual(statusLines(body.received()), ['HTTP/1.1 400'])
  })
})

describe('a request the HTTP parser refuses is a security event, sampled per address', () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    // A gateway of its own: events are sampled per address and second, so no earlier refusal may
    // have used this second's budget.
    gw = await startGateway({ ...routeTo(up.url, '/p/**'), server: { headersTimeoutMs: 300, requestTimeoutMs: 600 }, metrics: { enabled: true, port: 0 } })
  })
  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  const refused = async (bytes: string) => {
    const c = await rawConnection(gw.url)
    c.write(bytes)
    await c.closed
    const raw = c.received()
    return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { requestId: string; code: string }
  }

  test('the event names the answer\'s request id, the client address, the code and the parser\'s reason; a flood is sampled and its count carried', async () => {
    const first = await refused('GET /p/ok HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n')
    const event = await gw.waitFor((l) => l.requestId === first.requestId)
    assert.equal(event.event, 'http.bad_request')
    assert.equal(event.code, 'ERR_HTTP_BAD_REQUEST')
    assert.equal(event.status, 400)
    assert.equal(event.decision, 'deny')
    assert.equal(event.clientIp, '127.0.0.1')
    assert.equal(event.reason, 'invalid_header_token')
    assert.equal(first.code, 'ERR_HTTP_BAD_REQUEST')

    // A flood from one address: at most one event per second gets through, the rest are counted.
    const flood: string[] = []
    for (let i = 0; i < 20; i++) flood.push((await refused('BAD\x01 REQUEST\r\n\r\n')).requestId)
    const seconds = new Set(flood)
    const written = () => gw.events().filter((e) => typeof e.requestId === 'string' && seconds.has(e.requestId))
    assert.ok(written().length < flood.length, `sampled: ${written().length} of ${flood.length} written`)
    // The next event of this kind for this address, a second later, carries what was skipped.
    await new Promise((r) => setTimeout(r, 1100))
    const later = await refused('BAD\x01 REQUEST\r\n\r\n')
    const last = await gw.waitFor((l) => l.requestId === later.requestId)
    // Every skipped refusal is carried by exactly one written event: by a flood event written
    // when the flood crossed into a new second, or by this one.
    const shown = written()
    const carried = shown.reduce((n, e) => n + Number(e.suppressed ?? 0), Number(last.suppressed ?? 0))
    assert.equal(carried, flood.length - shown.length, `${shown.length} of the flood written`)
    // Another kind of refusal is sampled apart: the flood did not use its budget.
    const big = await refused(`GET /p/ok HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    const overflow = await gw.waitFor((l) => l.requestId === big.requestId)
    assert.equal(overflow.event, 'http.headers_too_large')
    assert.equal(overflow.reason, 'header_overflow')

    // The metric counts every refusal, sampled or not.
    const metricsUrl = String(gw.lines.find((l) => l.msg === 'listening')!.metrics)
    const text = await (await fetch(metricsUrl)).text()
    assert.match(text, /^gateway_denials_total\{code="ERR_HTTP_BAD_REQUEST"\} 22$/m)
    assert.match(text, /^gateway_denials_total\{code="ERR_HTTP_HEADERS_TOO_LARGE"\} 1$/m)
  })

  test('a head that does not arrive in time is a request_timeout event', async () => {
    const c = await rawConnection(gw.url)
    c.write('GET /p/ok HTTP/1.1\r\nHost: x\r\nX-Slow: ')
    await c.closed
    const raw = c.received()
    const { requestId, code } = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { requestId: string; code: string }
    assert.equal(code, 'ERR_HTTP_REQUEST_TIMEOUT')
    const event = await gw.waitFor((l) => l.requestId === requestId)
    assert.equal(event.event, 'http.request_timeout')
    assert.equal(event.reason, 'request_timeout')
  })
})

describe('a request whose own body breaks after the pipeline took it is refused as that request', () => {
  let up: RecordingUpstream
  let gw: StartedGateway
  before(async () => {
    up = await startUpstream((_req, res) => res.end('ok'))
    // A gateway of its own: these events are sampled per kind and address like the parser's.
    gw = await startGateway({ ...routeTo(up.url, '/p/**'), server: { headersTimeoutMs: 500, requestTimeoutMs: 1500 } })
  })
  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  /** The problem a connection was answered with, once it closed, and the lines the gateway wrote for it. */
  async function answered(c: Awaited<ReturnType<typeof rawConnection>>) {
    await c.closed
    const raw = c.received()
    assert.equal((raw.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, raw)
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
    const problem = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { requestId: string; code: string; status: number }
    assert.match(head, new RegExp(`\r\nx-request-id: ${problem.requestId}\r\n`))
    const event = await gw.waitFor((l) => l.name === 'security' && l.requestId === problem.requestId)
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === problem.requestId)
    return { head, problem, event, access }
  }

  test('a body cut short (the client half-closes) is a 400 whose request id, event and access line are the request\'s', async () => {
    const c = await rawConnection(gw.url)
    c.write('POST /p/upload?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n' + 'a'.repeat(10))
    // Let the pipeline take the request and start forwarding its body before it breaks.
    await new Promise((r) => setTimeout(r, 200))
    c.end()
    const { head, problem, event, access } = await answered(c)
    assert.match(head, /^HTTP\/1\.1 400 /)
    assert.match(head, /\r\nconnection: close\r\n/i)
    assert.deepEqual([problem.code, problem.status], ['ERR_HTTP_BAD_REQUEST', 400])
    assert.deepEqual(
      [event.event, event.method, event.path, event.route, event.reason, event.decision, event.clientIp],
      ['http.bad_request', 'POST', '/p/upload', 'route-0', 'invalid_eof_state', 'deny', '127.0.0.1'],
    )
    assert.deepEqual([access.status, access.method, access.path, access.route], [400, 'POST', '/p/upload', 'route-0'])
    // One record of the request: no nameless parser refusal beside it, and no second access line.
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(gw.lines.filter((l) => l.reason === 'invalid_eof_state').map((l) => l.requestId), [problem.requestId])
    assert.equal(gw.lines.filter((l) => l.name === 'access' && l.path === '/p/upload').length, 1)
    // The upstream never got a complete request: the gateway aborted the one it had started.
    assert.equal(up.received.filter((r) => r.url.startsWith('/p/upload')).length, 0)
  })

  test('a body not complete within requestTimeoutMs is a 408 with the request\'s id, event and access line', async () => {
    const c = await rawConnection(gw.url)
    c.write('POST /p/slow-upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n' + 'a'.repeat(10))
    const { head, problem, event, access } = await answered(c)
    assert.match(head, /^HTTP\/1\.1 408 /)
    assert.deepEqual([problem.code, problem.status], ['ERR_HTTP_REQUEST_TIMEOUT', 408])
    assert.deepEqual(
      [event.event, event.method, event.path, event.route, event.reason],
      ['http.request_timeout', 'POST', '/p/slow-upload', 'route-0', 'request_timeout'],
    )
    assert.deepEqual([access.status, access.method, access.path], [408, 'POST', '/p/slow-upload'])
    assert.equal(gw.lines.filter((l) => l.name === 'access' && l.path === '/p/slow-upload').length, 1)
  })
})

describe('client timeouts do not cut a request waiting on its upstream, and still cut idle, slow and non-reading clients', () => {
  // Short client timeouts: an inactivity timeout on the client socket derived from them would fire
  // long before the slow upstream below answers.
  const server = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300 }
  const SLOW_ANSWER_MS = 4000
  let up: RecordingUpstream
  let gw: StartedGateway
  let bigClosed!: () => void
  const bigClosedP = new Promise<void>((r) => (bigClosed = r))

  before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow answer'), SLOW_ANSWER_MS)
      } else if (req.url === '/late') {
        // Never answered: the upstream's headersTimeoutMs decides.
      } else if (req.url === '/big') {
        // Answers late, then streams without end as fast as the gateway takes it.
        res.on('close', bigClosed)
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' })
          const chunk = Buffer.alloc(64 * 1024, 120)
          const pump = (): void => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once('drain', pump)
          }
          pump()
        }, SLOW_ANSWER_MS)
      } else {
        res.end('ok')
      }
    })
    gw = await startGateway(
      baseConfig({
        server,
        upstreams: [
          { id: 'patient', url: up.url, headersTimeoutMs: 10_000 },
          { id: 'strict', url: up.url, headersTimeoutMs: 2500 },
        ],
        routes: [
          { path: '/slow', methods: ['GET'], upstream: 'patient', auth: 'public' },
          { path: '/big', methods: ['GET'], upstream: 'patient', auth: 'public' },
          { path: '/late', methods: ['GET'], upstream: 'strict', auth: 'public' },
        ],
      }),
    )
  })

  after(async () => {
    await gw?.stop()
    await up?.close()
  })

  test('an upstream answering within its own timeouts gets its 200 through; one past them is a 504', async () => {
    const [slow, late] = await Promise.all([fetch(gw.url + '/slow'), fetch(gw.url + '/late')])
    assert.equal(slow.status, 200)
    assert.equal(await slow.text(), 'slow answer')
    assert.equal(late.status, 504)
    assert.equal(((await late.json()) as { code: string }).code, 'ERR_FORWARD_TIMEOUT')
  })

  test('a connection that never sends anything is closed', async () => {
    const c = await rawConnection(gw.url)
    await c.closed
    assert.ok(c.received() === '' || c.received().startsWith('HTTP/1.1 408'), c.received())
  })

  test('a client trickling its headers (slowloris) is cut', async () => {
    const c = await rawConnection(gw.url)
    c.write('GET /slow HTTP/1.1\r\nHost: x\r\n')
    const trickle = setInterval(() => c.write('X-Slow: 1\r\n'), 100)
    await c.closed.finally(() => clearInterval(trickle))
    assert.ok(c.received() === '' || c.received().startsWith('HTTP/1.1 408'), c.received())
  })

  test('a client that stops reading its response is cut', async () => {
    const { hostname, port } = new URL(gw.url)
    const sock = connect(Number(port), hostname)
    sock.on('error', () => {})
    await new Promise((r) => sock.once('connect', r))
    // Never read: the response backs up into the gateway, which must give up on this client.
    sock.pause()
    sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
    const line = await gw.waitFor((l) => l.name === 'access' && l.path === '/big', 60_000)
    assert.equal(line.status, 499, 'the response did not complete')
    await bigClosedP
    sock.destroy()
  })
})
