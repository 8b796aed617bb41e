import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import { CLI, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/net.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'

/**
 * The examples as a user runs them: examples/portcullis.yaml (ports and identity provider swapped
 * for the test's own), the two services of examples/services/ started by their launcher, and
 * requests from a client through the gateway, and around it.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const LAUNCHER = join(ROOT, 'dist', 'scripts', 'example-services.js')
const run = promisify(execFile)

/** Starts the example services; resolves with their URLs once both listen. */
function startServices(args: string[]): Promise<{ child: ChildProcess; urls: Record<string, string> }> {
  const child = spawn(process.execPath, [LAUNCHER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const urls: Record<string, string> = {}
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`example services did not start:\n${out}`)), 20_000)
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c))
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c
      for (const line of c.split('\n').filter(Boolean)) {
        const l = JSON.parse(line) as { service: string; listening: string }
        urls[l.service] = l.listening
      }
      if (urls.orders && urls.users) (clearTimeout(timer), resolve({ child, urls }))
    })
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`example services exited with ${code}:\n${out}`))))
  })
}

const code = async (res: Response) => ((await res.json()) as { code: string }).code

describe('examples: client → gateway → example services, identity verified twice', () => {
  let ks: KeyServer
  let gw: StartedGateway
  let services: ChildProcess
  let urls: Record<string, string>
  let gatewayIssuer: string

  before(async () => {
    const example = parse(readFileSync(join(ROOT, 'examples', 'portcullis.yaml'), 'utf8')) as Record<string, any>
    const [issuer] = example.issuers as Array<Record<string, unknown>>
    ks = await startKeyServer({ audience: (issuer.audiences as string[])[0] })
    gatewayIssuer = example.internalTokens.issuer as string
    const port = await freePort()
    const jwksUri = `http://127.0.0.1:${port}/.well-known/portcullis/jwks.json`
    ;({ child: services, urls } = await startServices(['--gateway-issuer', gatewayIssuer, '--jwks-uri', jwksUri, '--orders-port', '0', '--users-port', '0']))

    // The example config, with the test's ports and identity provider; everything else as shipped.
    example.listeners = [{ host: '127.0.0.1', port }]
    example.issuers = [{ ...issuer, discoveryUrl: ks.discoveryUrl }]
    for (const u of example.upstreams as Array<Record<string, unknown>>) u.url = urls[u.id as string]
    example.logging = { level: 'info', events: 'stdout', access: 'stdout' }
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-examples-'))
    await run(process.execPath, [CLI, 'keys', 'generate', '--out', join(dir, 'keys.json')])
    gw = await startGateway(example, { env: { PORTCULLIS_DEMO_SIGNING_KEYS: readFileSync(join(dir, 'keys.json'), 'utf8') } })
  })
  after(async () => {
    await gw?.stop()
    if (services && services.exitCode === null) {
      const exited = new Promise((r) => services.once('exit', r))
      services.kill('SIGTERM')
      await exited
    }
    await ks?.close()
  })

  test('GET /orders/42 reaches the orders service, which verified the internal token and shows the caller as subject and the gateway as actor', async () => {
    const token = await ks.sign({ sub: 'alice', client_id: 'shop', scope: 'orders:read' })
    const res = await fetch(gw.url + '/orders/42', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    const body = (await res.json()) as { service: string; order: { id: string }; identity: Record<string, unknown> }
    assert.equal(body.service, 'orders')
    assert.equal(body.order.id, '42')
    assert.equal(body.identity.subject, 'alice')
    assert.equal(body.identity.clientId, 'shop')
    assert.equal(body.identity.tokenIssuer, gatewayIssuer)
    assert.equal(body.identity.actor, gatewayIssuer)
    assert.equal(body.identity.callerIssuer, ks.issuer)
  })

  test('GET /users/me reaches the Fastify users service; POST /orders with orders:write is created', async () => {
    const token = await ks.sign({ sub: 'bob', scope: 'users:read orders:write' })
    const me = await fetch(gw.url + '/users/me', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(me.status, 200)
    const body = (await me.json()) as { service: string; user: { id: string } }
    assert.equal(body.service, 'users')
    assert.equal(body.user.id, 'bob')
    const created = await fetch(gw.url + '/orders', { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    assert.equal(created.status, 201)
  })

  test('the public /status route answers without a token; the gateway keys are served', async () => {
    assert.equal((await fetch(gw.url + '/status')).status, 200)
    const jwks = (await (await fetch(gw.url + '/.well-known/portcullis/jwks.json')).json()) as { keys: unknown[] }
    assert.equal(jwks.keys.length, 1)
  })

  test('around the gateway the services refuse: no token, or the caller’s own valid token', async () => {
    const token = await ks.sign({ sub: 'mallory', scope: 'orders:read users:read' })
    const none = await fetch(urls.orders + '/orders/42')
    assert.equal(none.status, 401)
    assert.equal(await code(none), 'ERR_AUTHN_MISSING')
    const external = await fetch(urls.orders + '/orders/42', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(external.status, 401)
    assert.equal(await code(external), 'ERR_AUTHN_INVALID_TOKEN')
    const users = await fetch(urls.users + '/users/me', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(users.status, 401)
    assert.equal(await code(users), 'ERR_AUTHN_INVALID_TOKEN')
  })
})

test('the services launcher answers --help, and refuses an unknown option or a bad port with exit 2 and its usage, without a stack trace', async () => {
  const help = await run(process.execPath, [LAUNCHER, '--help'])
  assert.match(help.stdout, /^Usage: node dist\/scripts\/example-services\.js/)
  for (const args of [['--frob'], ['--orders-port', 'abc'], ['--users-port', '70000']]) {
    const failed = await run(process.execPath, [LAUNCHER, ...args]).then(
      () => assert.fail(`${args.join(' ')} was accepted`),
      (err: { code: number; stdout: string; stderr: string }) => err,
    )
    assert.equal(failed.code, 2, args.join(' '))
    assert.equal(failed.stdout, '')
    assert.match(failed.stderr, /^example-services: .*\n\nUsage: /)
    assert.doesNotMatch(failed.stderr, /\n\s+at /, 'no stack trace')
  }
})
