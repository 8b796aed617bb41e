import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
import { startKeyServer, type KeyServer } from '../helpers/keys.js'
import { freePort } from '../helpers/net.js'

/** What an investigator computes from a suspect token to find its events (docs/events.md). */
const digestOf = (token: string) => createHash('sha256').update(token).digest('base64url').slice(0, 16)

/**
 * Security events as an investigator reads them: every refusal that came with a bearer token names
 * it by digest, whichever stage refused it; the token itself is on no line.
 */
describe('request events name the presented token by digest, also when refused before authn', () => {
  let ks: KeyServer
  let up: RecordingUpstream
  let gw: StartedGateway
  let metricsPort: number
  before(async () => {
    ks = await startKeyServer()
    await ks.addKey()
    up = await startUpstream()
    metricsPort = await freePort()
    gw = await startGateway(
      baseConfig({
        server: { trustedProxies: ['127.0.0.1'] },
        metrics: { enabled: true, host: '127.0.0.1', port: metricsPort },
        issuers: [{ id: 'test', issuer: ks.issuer, jwksUri: ks.jwksUri, audiences: ['api://test'] }],
        upstreams: [{ id: 'u', url: up.url }],
        routes: [
          { id: 'by-ip', path: '/by-ip', methods: ['GET'], upstream: 'u', auth: 'required', limits: ['per-ip'] },
          { id: 'by-subject', path: '/by-subject', methods: ['GET'], upstream: 'u', auth: 'required', limits: ['per-subject'] },
        ],
        limits: {
          policies: [
            { id: 'per-ip', key: ['ip'], rate: { limit: 1, periodSec: 3600 } },
            { id: 'per-subject', key: ['subject'], rate: { limit: 1, periodSec: 3600 } },
          ],
        },
      }),
    )
  })
  after(async () => {
    await gw.stop()
    await up.close()
    await ks.close()
  })

  const eventFor = (requestId: string | null) => gw.waitFor((l) => l.name === 'security' && l.requestId === requestId)

  test('a 429 of a limit checked before authn and a 404 carry the digest; a 429 after authn also the subject', async () => {
    const token = await ks.sign({ jti: 'jti-events-1' })
    const headers = { authorization: `Bearer ${token}`, 'x-forwarded-for': '198.51.100.20' }
    assert.equal((await fetch(gw.url + '/by-ip', { headers })).status, 200)
    const ipDenied = await fetch(gw.url + '/by-ip', { headers })
    assert.equal(ipDenied.status, 429)
    const ipEvent = await eventFor(ipDenied.headers.get('x-request-id'))
    assert.equal(ipEvent.event, 'limits.exceeded')
    assert.equal(ipEvent.reason, 'limit:per-ip')
    assert.equal(ipEvent.clientIp, '198.51.100.20', 'the address behind the trusted proxy')
    assert.equal(ipEvent.decision, 'deny')
    assert.match(String(ipEvent.traceId), /^[0-9a-f]{32}$/)
    assert.equal(ipEvent.tokenDigest, digestOf(token), 'refused before authn, still named by digest')

    const notFound = await fetch(gw.url + '/nowhere', { headers })
    assert.equal(notFound.status, 404)
    const nfEvent = await eventFor(notFound.headers.get('x-request-id'))
    assert.equal(nfEvent.event, 'route.not_found')
    assert.equal(nfEvent.tokenDigest, digestOf(token))

    const other = { ...headers, 'x-forwarded-for': '198.51.100.21' }
    assert.equal((await fetch(gw.url + '/by-subject', { headers: other })).status, 200)
    const subDenied = await fetch(gw.url + '/by-subject', { headers: other })
    assert.equal(subDenied.status, 429)
    const subEvent = await eventFor(subDenied.headers.get('x-request-id'))
    assert.equal(subEvent.reason, 'limit:per-subject')
    assert.deepEqual(
      { subject: subEvent.subject, clientId: subEvent.clientId, jti: subEvent.jti, tokenDigest: subEvent.tokenDigest, route: subEvent.route },
      { subject: 'user-1', clientId: 'client-1', jti: 'jti-events-1', tokenDigest: digestOf(token), route: 'by-subject' },
    )
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === subDenied.headers.get('x-request-id'))
    assert.equal(access.subject, 'user-1')
    assert.equal(access.status, 429)

    assert.ok(!JSON.stringify(gw.lines).includes(token.split('.')[2]), 'no token on any line')
  })

  test('a 405 names the route whose path matched, in its event and its access line', async () => {
    const r = await fetch(gw.url + '/by-subject', { method: 'DELETE' })
    assert.equal(r.status, 405)
    assert.equal(r.headers.get('allow'), 'GET, HEAD')
    const event = await eventFor(r.headers.get('x-request-id'))
    assert.equal(event.event, 'route.method_not_allowed')
    assert.equal(event.route, 'by-subject')
    const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === r.headers.get('x-request-id'))
    assert.equal(access.route, 'by-subject')
    assert.equal(access.status, 405)
  })

  test('a token whose signature verified but whose claims are refused (expired, another audience) is named by subject in its event, and authenticates nothing', async () => {
    const now = Math.floor(Date.now() / 1000)
    const cases = [
      { claims: { sub: 'expired-user', client_id: 'app-1', jti: 'jti-expired', iat: now - 600, exp: now - 300 }, event: 'authn.expired' },
      { claims: { sub: 'other-aud-user', client_id: undefined, azp: 'app-2', jti: 'jti-aud', aud: 'api://other' }, event: 'authn.invalid_token' },
    ]
    for (const { claims, event } of cases) {
      const token = await ks.sign(claims)
      const r = await fetch(gw.url + '/by-subject', { headers: { authorization: `Bearer ${token}` } })
      assert.equal(r.status, 401)
      const e = await eventFor(r.headers.get('x-request-id'))
      assert.equal(e.event, event)
      assert.equal(e.subject, claims.sub)
      assert.equal(e.clientId, claims.client_id ?? claims.azp)
      assert.equal(e.issuer, ks.issuer)
      assert.equal(e.jti, claims.jti)
      assert.equal(e.tokenDigest, digestOf(token))
      const access = await gw.waitFor((l) => l.name === 'access' && l.requestId === r.headers.get('x-request-id'))
      assert.equal(access.subject, null, 'the access log names only who was authenticated')
    }
    // A forged signature names nobody: its claims are not believed.
    const forged = (await ks.sign({ sub: 'forged-user' })).slice(0, -4) + 'AAAA'
    const r = await fetch(gw.url + '/by-subject', { headers: { authorization: `Bearer ${forged}` } })
    assert.equal(r.status, 401)
    const e = await eventFor(r.headers.get('x-request-id'))
    assert.equal(e.reason, 'bad_signature')
    assert.equal(e.subject, undefined)
  })

  test('random paths, methods and hosts sprayed at the gateway add no metric series', async () => {
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const series = (text: string) => text.split('\n').filter((l) => l.startsWith('gateway_')).map((l) => l.replace(/ \S+$/, ''))
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND', 'PURGE', 'SEARCH', 'FOO', 'G3T']
    const { port } = new URL(gw.url)
    const spray = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const method = methods[i % methods.length]
        const line = `${method} /r/${i}-${Math.random().toString(36).slice(2)}?q=${i} HTTP/1.1\r\nHost: h${i}.example\r\nX-Forwarded-For: 203.0.113.${i % 250}\r\n\r\n`
        await new Promise<void>((resolve) => {
          const s = connect(Number(port), '127.0.0.1')
          s.on('error', () => resolve())
          s.on('close', () => resolve())
          s.once('data', () => s.destroy())
          s.write(line)
        })
      }
    }
    await spray(0, 40)
    const first = series(await scrape())
    await spray(40, 200)
    const text = await scrape()
    assert.deepEqual(series(text), first, 'the same series, only their values moved')
    assert.ok(!/\/r\/|203\.0\.113|h\d+\.example|PROPFIND/.test(text), 'no request value is a label')
    assert.match(text, /^gateway_denials_total\{code="ERR_ROUTE_NOT_FOUND"\} \d+$/m)
    assert.match(text, /^gateway_denials_total\{code="ERR_HTTP_BAD_REQUEST"\} \d+$/m)
  })
})
