import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPair, exportJWK } from 'jose'
import type { EventSink, SecurityEvent } from '../../events/event.js'
import { startKeyServer, type KeyServer } from '../../../test/helpers/keys.js'
import { KeyStore, type KeyStoreOptions } from './key-store.js'

const T0 = 1_700_000_000_000

interface Harness {
  store: KeyStore
  events: Array<Record<string, unknown>>
  /** Delays handed to the scheduler, in order. Timers never fire on their own. */
  delays: number[]
  clock: { now: number }
}

function harness(over: Partial<KeyStoreOptions> & Pick<KeyStoreOptions, 'expectedIssuer'>): Harness {
  const events: Array<Record<string, unknown>> = []
  const delays: number[] = []
  const clock = { now: T0 }
  const sink: EventSink = { emit: (e: SecurityEvent) => void events.push(e as Record<string, unknown>), flush: async () => {} }
  const store = new KeyStore({
    issuerId: 'main',
    discoveryUrl: undefined,
    jwksUri: undefined,
    algorithms: new Set(['RS256', 'ES256']),
    minAgeSec: 60,
    maxAgeSec: 600,
    unknownKidRefreshIntervalSec: 30,
    fetchTimeoutMs: 5_000,
    now: () => clock.now,
    events: sink,
    schedule: (_fn, delayMs) => {
      delays.push(delayMs)
      return () => {}
    },
    ...over,
  })
  return { store, events, delays, clock }
}

async function keyServer(t: { after: (fn: () => Promise<void>) => void }): Promise<KeyServer> {
  const ks = await startKeyServer()
  t.after(() => ks.close())
  return ks
}

/** A throwaway server with hand-written answers, for documents the key server cannot produce. */
async function serve(t: { after: (fn: () => Promise<void>) => void }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  )
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const jwksCount = (ks: KeyServer) => ks.requests.filter((p) => p === '/jwks').length

test('the first load fetches the JWKS, makes the store ready and reports keys.refreshed', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  assert.equal(h.store.ready(), false)
  await h.store.start()
  assert.equal(h.store.ready(), true)
  assert.deepEqual(h.store.state().kids, [ks.keys[0].kid])
  assert.equal(h.store.keysFor(ks.keys[0].kid, 'RS256').length, 1)
  assert.equal(h.store.keysFor(ks.keys[0].kid, 'ES256').length, 0, 'an RSA key never serves an EC algorithm')
  const ev = h.events.find((e) => e.type === 'keys.refreshed')
  assert.ok(ev)
  assert.equal(ev.issuer, 'main')
  assert.equal(JSON.stringify(h.events).includes('"n"'), false, 'events carry kids, not key material')
})

test('Cache-Control max-age sets the freshness, clamped to the configured bounds, and the refresh is scheduled before it ends', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  const cases: Array<[Record<string, string>, number]> = [
    [{ 'cache-control': 'public, max-age=120' }, 120],
    [{ 'cache-control': 'max-age=5' }, 60],
    [{ 'cache-control': 'max-age=99999' }, 600],
    [{}, 600],
    [{ 'cache-control': 'no-store' }, 60],
    [{ 'cache-control': 'no-cache, max-age=300' }, 60],
    [{ 'cache-control': 'max-age=300', age: '100' }, 200],
  ]
  for (const [headers, expectedSec] of cases) {
    ks.jwksHeaders = headers
    h.clock.now += 1_000
    await h.store.refresh('scheduled')
    assert.equal(h.store.state().freshUntil, h.clock.now + expectedSec * 1000, JSON.stringify(headers))
    const delay = h.delays.at(-1)!
    assert.ok(delay > 0 && delay < expectedSec * 1000, `refresh scheduled before expiry (${delay} ms for ${expectedSec} s)`)
  }
})

test('the scheduled background refresh loads the keys the provider publishes by then', async (t) => {
  const ks = await keyServer(t)
  const fns: Array<() => void> = []
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, schedule: (fn) => (fns.push(fn), () => {}) })
  await h.store.start()
  assert.equal(fns.length, 1, 'a refresh is scheduled after the first load')
  const rotated = await ks.addKey()
  fns[0]()
  await h.store.refresh('scheduled') // joins the refresh the timer started
  assert.equal(jwksCount(ks), 2)
  assert.equal(h.store.hasKid(rotated.kid), true)
  assert.equal(h.events.at(-1)!.source, 'scheduled')
  assert.equal(fns.length, 2, 'and the next one is scheduled')
})

test('an unknown kid triggers at most one refresh per interval, shared by concurrent callers', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, unknownKidRefreshIntervalSec: 30 })
  await h.store.start()
  assert.equal(jwksCount(ks), 1)
  const rotated = await ks.addKey()
  const a = h.store.refreshOnDemand('unknown_kid')
  const b = h.store.refreshOnDemand('unknown_kid')
  assert.ok(a && b)
  await Promise.all([a, b])
  assert.equal(jwksCount(ks), 2, 'two callers, one fetch')
  assert.equal(h.store.hasKid(rotated.kid), true)

  h.clock.now += 29_999
  assert.equal(h.store.refreshOnDemand('unknown_kid'), undefined, 'throttled within the interval')
  assert.equal(jwksCount(ks), 2)
  h.clock.now += 1
  await h.store.refreshOnDemand('unknown_kid')
  assert.equal(jwksCount(ks), 3)
})

test('with an interval of 0 every unknown kid may refresh', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, unknownKidRefreshIntervalSec: 0 })
  await h.store.start()
  await h.store.refreshOnDemand('unknown_kid')
  await h.store.refreshOnDemand('unknown_kid')
  assert.equal(jwksCount(ks), 3)
})

test('when the provider goes down the last good keys stay in use and keys.refresh_failed is reported with a growing retry delay', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  await h.store.start()
  const kid = ks.keys[0].kid
  ks.down = true
  await h.store.refresh('scheduled')
  await h.store.refresh('scheduled')
  assert.equal(h.store.ready(), true)
  assert.equal(h.store.keysFor(kid, 'RS256').length, 1)
  const failed = h.events.filter((e) => e.type === 'keys.refresh_failed')
  assert.equal(failed.length, 2)
  assert.equal(failed[0].reason, 'http_status')
  assert.equal(failed[0].keptKeys, 1)
  assert.ok((failed[1].retryInSec as number) > (failed[0].retryInSec as number))
  ks.down = false
  await h.store.refresh('scheduled')
  assert.equal(h.store.state().consecutiveFailures, 0)
})

test('a JWKS with no usable key is a failed refresh that keeps the previous keys', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  await h.store.start()
  const good = ks.keys.splice(0, ks.keys.length)
  await h.store.refresh('scheduled')
  assert.equal(h.events.at(-1)!.reason, 'no_usable_keys')
  assert.equal(h.store.keysFor(good[0].kid, 'RS256').length, 1)
})

test('the first load never rejects when the provider is unreachable, and the store stays not ready', async (t) => {
  const url = await serve(t, (req) => req.socket.destroy())
  const h = harness({ expectedIssuer: url, jwksUri: `${url}/jwks` })
  await h.store.start()
  assert.equal(h.store.ready(), false)
  assert.equal(h.events.at(-1)!.type, 'keys.refresh_failed')
  assert.equal(h.events.at(-1)!.reason, 'network')
  assert.ok(h.store.retryAfterSec() >= 1)
})

test('a provider that does not answer within fetchTimeoutMs is a failed fetch', async (t) => {
  const url = await serve(t, () => {
    /* never answers */
  })
  const h = harness({ expectedIssuer: url, jwksUri: `${url}/jwks`, fetchTimeoutMs: 50 })
  await h.store.start()
  assert.equal(h.store.ready(), false)
  assert.equal(h.events.at(-1)!.reason, 'timeout')
})

test('keys are read from the jwks_uri of the discovery document', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, discoveryUrl: ks.discoveryUrl })
  await h.store.start()
  assert.equal(h.store.ready(), true)
  assert.equal(h.store.state().jwksUri, ks.jwksUri)
  assert.deepEqual(ks.requests, ['/.well-known/openid-configuration', '/jwks'])
})

test('a discovery document whose issuer differs from the expected one is refused and its keys are never fetched', async (t) => {
  const ks = await keyServer(t)
  ks.discoveryOverrides = { issuer: 'https://evil.example' }
  const h = harness({ expectedIssuer: ks.issuer, discoveryUrl: ks.discoveryUrl })
  await h.store.start()
  assert.equal(h.store.ready(), false)
  assert.equal(h.events.at(-1)!.reason, 'discovery_issuer_mismatch')
  assert.equal(jwksCount(ks), 0)
})

test('a discovery document fetched over https cannot send the keys over plain http', async (t) => {
  const { publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }
  let jwksUri = 'http://keys.idp.example/jwks'
  const requested: string[] = []
  // A unit test has no TLS server: fetch is stubbed, for these made-up hosts only.
  const realFetch = globalThis.fetch
  globalThis.fetch = (async (input: string | URL | Request) => {
    const url = String(input)
    requested.push(url)
    const body = url.endsWith('/openid-configuration') ? { issuer: 'https://idp.example', jwks_uri: jwksUri } : jwks
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } })
  }) as typeof fetch
  t.after(() => {
    globalThis.fetch = realFetch
  })
  const discoveryUrl = 'https://idp.example/.well-known/openid-configuration'
  const h = harness({ expectedIssuer: 'https://idp.example', discoveryUrl })
  await h.store.start()
  assert.equal(h.store.ready(), false)
  assert.equal(h.events.at(-1)!.reason, 'bad_discovery')
  assert.deepEqual(requested, [discoveryUrl], 'the plain-http jwks_uri is never fetched')
  // Another host is fine, over https (OIDC Discovery lets jwks_uri live anywhere).
  jwksUri = 'https://keys.idp.example/jwks'
  await h.store.refresh('scheduled')
  assert.equal(h.store.ready(), true)
  assert.deepEqual(requested.slice(1), [discoveryUrl, jwksUri])
})

test('redirects are not followed: keys come from the configured URL only', async (t) => {
  const ks = await keyServer(t)
  const url = await serve(t, (_req, res) => res.writeHead(302, { location: ks.jwksUri }).end())
  const h = harness({ expectedIssuer: url, jwksUri: `${url}/jwks` })
  await h.store.start()
  assert.equal(h.store.ready(), false)
  assert.equal(jwksCount(ks), 0)
})

test('keys that cannot sign for an allowed algorithm are skipped and the rest are used', async (t) => {
  const { publicKey } = await generateKeyPair('RS256', { extractable: true })
  const rsa = await exportJWK(publicKey)
  const { publicKey: ec384 } = await generateKeyPair('ES384', { extractable: true })
  // jose refuses to make a key this short, node:crypto does not.
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
  const jwks = {
    keys: [
      { kty: 'oct', k: 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', kid: 'hmac' },
      { ...rsa, kid: 'enc', use: 'enc' },
      { ...rsa, kid: 'ops', key_ops: ['encrypt'] },
      { ...rsa, kid: 'wrong-alg', alg: 'ES256' },
      { ...(await exportJWK(ec384)), kid: 'not-allowed' },
      { ...small, kid: 'short' },
      'junk',
      { ...rsa, kid: 'good', use: 'sig' },
    ],
  }
  const url = await serve(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)))
  const h = harness({ expectedIssuer: url, jwksUri: `${url}/jwks` })
  await h.store.start()
  assert.deepEqual(h.store.state().kids, ['good'])
  assert.equal(h.store.hasKid('hmac'), false, 'a JWKS secret never becomes an HMAC key')
  assert.equal(h.store.keysFor(undefined, 'RS256').length, 1)
})

test('a kid the JWKS repeats gives at most as many candidate keys as a token without kid', async (t) => {
  const jwks = { keys: [] as Array<Record<string, unknown>> }
  for (let i = 0; i < 6; i++) {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true })
    jwks.keys.push({ ...(await exportJWK(publicKey)), kid: 'same', alg: 'RS256' })
  }
  const url = await serve(t, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)))
  const h = harness({ expectedIssuer: url, jwksUri: `${url}/jwks` })
  await h.store.start()
  assert.equal(h.store.state().keys, 6)
  // Each candidate costs a signature verification per forged token naming that kid.
  assert.equal(h.store.keysFor('same', 'RS256').length, 3)
  assert.equal(h.store.keysFor(undefined, 'RS256').length, 3)
})

test('a rotation replaces the key set at once', async (t) => {
  const ks = await keyServer(t)
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  await h.store.start()
  const old = ks.keys[0]
  const next = await ks.addKey()
  ks.keys.splice(0, 1)
  await h.store.refresh('scheduled')
  assert.equal(h.store.hasKid(old.kid), false)
  assert.equal(h.store.hasKid(next.kid), true)
})

test('close stops refreshes and pending timers', async (t) => {
  const ks = await keyServer(t)
  let cancelled = 0
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, schedule: () => () => void cancelled++ })
  await h.store.start()
  await h.store.close()
  assert.equal(cancelled, 1)
  await h.store.refresh('scheduled')
  assert.equal(h.store.refreshOnDemand('unknown_kid'), undefined)
  assert.equal(jwksCount(ks), 1)
})

test('onKeysRemoved fires when a refresh drops a key in use (by kid or by material), not when keys stay or are added', async (t) => {
  const ks = await keyServer(t)
  let removals = 0
  const h = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, onKeysRemoved: () => removals++ })
  await h.store.start()
  await h.store.refresh('scheduled')
  assert.equal(removals, 0, 'the same key set again (imported anew) removes nothing')
  const added = await ks.addKey()
  await h.store.refresh('scheduled')
  assert.equal(removals, 0, 'a key added removes nothing')
  ks.keys.splice(ks.keys.indexOf(added), 1)
  await h.store.refresh('scheduled')
  assert.equal(removals, 1, 'the added key is gone')
  // Same kid, other key material: the key that verified earlier tokens is gone all the same.
  const other = await ks.addKey()
  await h.store.refresh('scheduled')
  const swapped = await ks.addKey('RS256', { publish: false })
  ks.keys.splice(ks.keys.indexOf(other), 1, { ...swapped, kid: other.kid, publicJwk: { ...swapped.publicJwk, kid: other.kid } })
  await h.store.refresh('scheduled')
  assert.equal(removals, 2, 'a kid whose key material changed')
  assert.equal(h.store.keyRemovals, 2, 'the count an asynchronous verification compares before caching')
})

test('a reloaded store takes over the keys of the store it replaces when they come from the same place, and keeps them while the provider is down', async (t) => {
  const ks = await keyServer(t)
  const running = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  await running.store.start()
  ks.down = true
  const next = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  assert.equal(next.store.adopt(running.store), true)
  assert.equal(next.store.ready(), true, 'ready before its first load')
  await next.store.start()
  assert.equal(next.store.ready(), true, 'a failed first load keeps the keys taken over')
  assert.equal(next.store.keysFor(ks.keys[0].kid, 'RS256').length, 1)
  const failed = next.events.find((e) => e.type === 'keys.refresh_failed')
  assert.equal(failed?.keptKeys, 1)
  // Once the provider is back, the first refresh installs what it publishes then.
  ks.down = false
  const rotated = await ks.addKey('RS256')
  await next.store.refresh('scheduled')
  assert.ok(next.store.state().kids.includes(rotated.kid))
})

test('keys are not taken over from a store that fetches elsewhere, for other algorithms or for another issuer, nor from one that has none', async (t) => {
  const ks = await keyServer(t)
  const running = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  await running.store.start()
  const others: Array<Partial<KeyStoreOptions> & Pick<KeyStoreOptions, 'expectedIssuer'>> = [
    { expectedIssuer: ks.issuer, jwksUri: `${ks.jwksUri}?other` },
    { expectedIssuer: ks.issuer, jwksUri: ks.jwksUri, algorithms: new Set(['RS256']) },
    { expectedIssuer: `${ks.issuer}/other`, jwksUri: ks.jwksUri },
    { expectedIssuer: ks.issuer, jwksUri: undefined, discoveryUrl: ks.discoveryUrl },
  ]
  for (const over of others) {
    const next = harness(over)
    assert.equal(next.store.adopt(running.store), false, JSON.stringify(over, (_k, v) => (v instanceof Set ? [...v] : v)))
    assert.equal(next.store.ready(), false)
  }
  const empty = harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri })
  assert.equal(harness({ expectedIssuer: ks.issuer, jwksUri: ks.jwksUri }).store.adopt(empty.store), false)
})
