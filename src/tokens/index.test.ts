import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLocalJWKSet, jwtVerify } from 'jose'
import pino from 'pino'
import type { Config } from '../config/schema.js'
import type { Deps, Identity, RequestContext } from '../pipeline/stage.js'
import { MintedTokenCache } from './cache.js'
import { buildClaims } from './claims.js'
import { createInternalTokens, INTERNAL_TOKEN_TYP } from './index.js'
import { newKeySet, parseKeySet, rotateKeySet, serializeKeySet, type KeyAlg, type KeySetDocument } from './key-set.js'
import { createKeySchedule } from './key-schedule.js'
import { createJwsSigner } from './sign.js'

const T0 = Date.parse('2030-01-01T00:00:00Z')
const ISS = 'https://gateway.test'

function identity(overrides: Partial<Identity> = {}): Identity {
  return {
    issuer: 'https://idp.test',
    issuerId: 'idp',
    subject: 'alice',
    clientId: 'web',
    scopes: new Set(['orders:read', 'profile']),
    jti: 'caller-1',
    tokenDigest: 'digest-alice-0001',
    expiresAt: T0 + 3600_000,
    claims: {},
    ...overrides,
  }
}

function setup(options: { set?: KeySetDocument; alg?: KeyAlg; requestIdClaim?: boolean; cacheMaxEntries?: number; ttlSec?: number } = {}) {
  let now = T0
  const set = options.set ?? newKeySet(options.alg ?? 'EdDSA', T0 - 1000)
  const config = {
    server: { realm: 'portcullis', healthPath: '/healthz', readyPath: '/readyz' },
    internalTokens: {
      issuer: ISS,
      signingKeys: serializeKeySet(set),
      algorithm: options.alg ?? 'EdDSA',
      ttlSec: options.ttlSec ?? 30,
      jwksPath: '/jwks',
      jwksMaxAgeSec: 60,
      cacheMaxEntries: options.cacheMaxEntries ?? 100,
      requestIdClaim: options.requestIdClaim ?? false,
    },
    upstreams: [
      { id: 'orders', url: 'http://o', audience: 'orders' },
      { id: 'users', url: 'http://u', audience: 'users' },
    ],
    routes: [
      { id: 'o1', path: '/o/**', upstream: 'orders', auth: 'required', upstreamToken: 'internal' },
      { id: 'o2', path: '/o2/**', upstream: 'orders', auth: 'required', upstreamToken: 'internal' },
      { id: 'u', path: '/u/**', upstream: 'users', auth: 'required', upstreamToken: 'internal' },
      { id: 'f', path: '/f/**', upstream: 'orders', auth: 'required' },
    ],
  } as unknown as Config
  const deps: Deps = { now: () => now, events: { emit() {}, flush: async () => {} } as unknown as Deps['events'], logger: pino({ level: 'silent' }) }
  const tokens = createInternalTokens(config, deps)!
  const call = (routeId: string, id: Identity = identity(), requestId = 'req-00000001') =>
    tokens.upstreamAuthorization({ id: requestId, route: { id: routeId }, identity: id } as unknown as RequestContext)
  const jwks = () => createLocalJWKSet(tokens.jwks.document(now) as Parameters<typeof createLocalJWKSet>[0])
  return { tokens, call, jwks, set, advance: (ms: number) => (now += ms), now: () => now }
}

const payloadOf = (authorization: string) => JSON.parse(Buffer.from(authorization.split('.')[1], 'base64url').toString()) as Record<string, unknown>

test('EdDSA and ES256 tokens verify with the published JWKS, with the typ, claims and act the docs promise', async () => {
  for (const alg of ['EdDSA', 'ES256'] as const) {
    const s = setup({ alg })
    const authorization = s.call('o1')!
    assert.match(authorization, /^Bearer /)
    const { payload, protectedHeader } = await jwtVerify(authorization.slice(7), s.jwks(), {
      issuer: ISS,
      audience: 'orders',
      typ: INTERNAL_TOKEN_TYP,
      algorithms: [alg],
      currentDate: new Date(s.now()),
    })
    assert.equal(protectedHeader.kid, s.set.keys[0].kid)
    assert.equal(payload.sub, 'alice')
    assert.equal(payload.client_id, 'web')
    assert.equal(payload.scope, 'orders:read profile')
    assert.equal(payload.orig_iss, 'https://idp.test')
    assert.equal(payload.orig_jti, 'caller-1')
    assert.deepEqual(payload.act, { sub: ISS })
    assert.equal(payload.iat, T0 / 1000)
    assert.equal(payload.exp, T0 / 1000 + 30)
    assert.equal(payload.req_id, undefined)
  }
})

test('a forward route gets no internal token', () => {
  assert.equal(setup().call('f'), undefined)
})

test('exp is capped by the caller token’s exp and by the signing key’s retirement', () => {
  const claims = (callerExp: number, retire: number) =>
    JSON.parse(buildClaims({ issuer: ISS, audience: 'a', identity: identity({ expiresAt: callerExp }), ttlSec: 30, nowMs: T0, keyRetireAt: retire }).json) as { exp: number }
  assert.equal(claims(T0 + 3600_000, Infinity).exp, T0 / 1000 + 30)
  assert.equal(claims(T0 + 10_000, Infinity).exp, T0 / 1000 + 10)
  assert.equal(claims(T0 + 3600_000, T0 + 5000).exp, T0 / 1000 + 5)
})

test('a caller token that carried act keeps it as the nested prior actor (RFC 8693 §4.1 delegation chain)', () => {
  const prior = { sub: 'batch-job' }
  const { act } = JSON.parse(buildClaims({ issuer: ISS, audience: 'a', identity: identity({ claims: { act: prior } }), ttlSec: 30, nowMs: T0, keyRetireAt: Infinity }).json) as {
    act: unknown
  }
  assert.deepEqual(act, { sub: ISS, act: prior })
})

test('the cache: same caller and audience → same token until a margin before exp; other audience or caller → another token', () => {
  const s = setup()
  const first = s.call('o1')!
  assert.equal(s.call('o2'), first, 'two routes of one audience share the token')
  assert.notEqual(s.call('u'), first)
  assert.notEqual(s.call('o1', identity({ tokenDigest: 'digest-bob-00001', subject: 'bob' })), first)
  s.advance(24_999)
  assert.equal(s.call('o1'), first, 'reused until 5 s before exp')
  s.advance(1)
  const renewed = s.call('o1')!
  assert.notEqual(renewed, first)
  assert.equal(payloadOf(renewed).iat, (T0 + 25_000) / 1000)
})

test('a cached token is not handed to another caller whose digest prefix collides', () => {
  const s = setup()
  const alice = s.call('o1')!
  const mallory = s.call('o1', identity({ subject: 'mallory' }))!
  assert.notEqual(mallory, alice)
  assert.equal(payloadOf(mallory).sub, 'mallory')
})

test('with requestIdClaim the request id is signed in and nothing is cached; cacheMaxEntries 0 signs every time', () => {
  const s = setup({ requestIdClaim: true })
  const a = s.call('o1', identity(), 'req-aaaaaaaa')!
  const b = s.call('o1', identity(), 'req-bbbbbbbb')!
  assert.notEqual(a, b)
  assert.equal(payloadOf(a).req_id, 'req-aaaaaaaa')
  assert.equal(payloadOf(b).req_id, 'req-bbbbbbbb')
  const off = setup({ cacheMaxEntries: 0 })
  assert.notEqual(off.call('o1'), off.call('o1'))
})

test('the cache is bounded: beyond maxEntries the oldest entry goes', () => {
  const cache = new MintedTokenCache(2)
  for (const d of ['a', 'b', 'c']) cache.set(identity({ tokenDigest: d }), `Bearer ${d}`, T0, T0 + 30_000, T0)
  assert.equal(cache.size, 2)
  assert.equal(cache.get(identity({ tokenDigest: 'a' }), T0), undefined)
  assert.equal(cache.get(identity({ tokenDigest: 'c' }), T0), 'Bearer c')
  // A token too close to its exp to be worth reusing is not stored.
  cache.set(identity({ tokenDigest: 'z' }), 'Bearer z', T0, T0 + 1000, T0 + 600)
  assert.equal(cache.get(identity({ tokenDigest: 'z' }), T0), undefined)
})

test('a published-ahead key starts signing at its activation without a reload, and the old key leaves the JWKS at its retirement', async () => {
  const first = newKeySet('EdDSA', T0 - 10_000)
  const { set, added, retiring } = rotateKeySet(first, { overlapSec: 100, publishAheadSec: 60, nowMs: T0 })
  const s = setup({ set })
  const kid = (a: string) => JSON.parse(Buffer.from(a.split(' ')[1].split('.')[0], 'base64url').toString()).kid as string
  const before = s.call('o1')!
  assert.equal(kid(before), retiring.kid)
  assert.deepEqual(s.tokens.jwks.document(s.now()).keys.map((k) => k.kid).sort(), [added.kid, retiring.kid].sort())
  s.advance(60_000)
  const after = s.call('o1', identity({ tokenDigest: 'digest-new-00001' }))!
  assert.equal(kid(after), added.kid)
  // Tokens signed with the old key never outlive it.
  assert.ok((payloadOf(before).exp as number) * 1000 <= Date.parse(retiring.retireAt!))
  s.advance(100_000)
  assert.deepEqual(s.tokens.jwks.document(s.now()).keys.map((k) => k.kid), [added.kid])
})

test('an unusable key set is refused when the config is built, without its material in the message', () => {
  const set = newKeySet('EdDSA', T0)
  assert.throws(() => setup({ set, alg: 'ES256' }), /internalTokens.signingKeys: .*is EdDSA, but internalTokens.algorithm is ES256/)
  const broken = { ...set, keys: [{ ...set.keys[0], privateJwk: { ...set.keys[0].privateJwk, d: 'AAAA' } }] }
  assert.throws(
    () => setup({ set: broken }),
    (err: Error) => /cannot be imported/.test(err.message) && !err.message.includes(set.keys[0].privateJwk.x!),
  )
})

test('signing is deterministic in shape: header encoded once per key, ES256 signatures are 64-byte R||S', () => {
  const { keys } = parseKeySet(serializeKeySet(newKeySet('ES256', T0)))
  const signer = createJwsSigner(createKeySchedule(keys).signerAt(T0)!)
  const [h, , sig] = signer.sign('{"a":1}').split('.')
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { alg: 'ES256', typ: INTERNAL_TOKEN_TYP, kid: keys[0].kid })
  assert.equal(Buffer.from(sig, 'base64url').length, 64)
})

test('a caller act the service would refuse (not an RFC 8693 actor, or a chain too deep once the gateway is added) is refused at the edge, not signed', () => {
  const s = setup()
  const chain = (depth: number): Record<string, unknown> => (depth === 1 ? { sub: `actor-${depth}` } : { sub: `actor-${depth}`, act: chain(depth - 1) })
  const refused = (act: unknown) =>
    assert.throws(
      () => s.call('o1', identity({ tokenDigest: `digest-act-${JSON.stringify(act).length}`, claims: { act } })),
      (err: Error & { code?: string; reason?: string }) => err.code === 'ERR_AUTHN_INVALID_TOKEN' && err.reason === 'claim_type',
    )
  refused('batch-job')
  refused({ sub: 42 })
  refused({ sub: 'a', act: { iss: ['x'] } })
  refused(chain(8))
  const ok = s.call('o1', identity({ tokenDigest: 'digest-act-ok-001', claims: { act: chain(7) } }))!
  assert.deepEqual(payloadOf(ok).act, { sub: ISS, act: chain(7) })
})
