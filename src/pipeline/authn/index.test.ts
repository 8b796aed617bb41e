import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import type { Config, IssuerConfig } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import { startKeyServer, signCompact } from '../../../test/helpers/keys.js'
import { compileRoute, type CompiledRoute } from '../route/router.js'
import type { Deps, RequestContext } from '../stage.js'
import { createAuthnStage, type AuthnStage } from './index.js'

// The stage's clock: real time plus an offset that some tests move. Tokens are signed at the real
// time, so a frozen clock would see them "from the future" once the file has run longer than the
// clock skew (which a loaded machine can take).
let offsetMs = 0
const clock = {
  get now(): number {
    return Date.now() + offsetMs
  },
  set now(ms: number) {
    offsetMs = ms - Date.now()
  },
}
const events: Array<Record<string, unknown>> = []
const deps: Deps = {
  now: () => clock.now,
  events: { emit: (e) => void events.push(e as Record<string, unknown>), flush: async () => {} },
  logger: pino({ level: 'silent' }),
}

function issuer(id: string, ks: { issuer: string; jwksUri: string }, over: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    id,
    issuer: ks.issuer,
    jwksUri: ks.jwksUri,
    audiences: ['api://test'],
    algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    clockSkewSec: 30,
    maxTokenLifetimeSec: 3600,
    jwksCacheMaxAgeSec: 600,
    jwksCacheMinAgeSec: 60,
    unknownKidRefreshIntervalSec: 30,
    fetchTimeoutMs: 2000,
    verifier: 'node-crypto',
    ...over,
  }
}

const route = (over: { auth?: 'required' | 'public'; issuers?: string[] } = {}): CompiledRoute =>
  compileRoute({ path: '/x', methods: ['GET'], upstream: 'u', auth: over.auth ?? 'required', issuers: over.issuers }, 0)

function ctx(r: CompiledRoute, authorization?: string, query = ''): RequestContext {
  const rawHeaders = authorization === undefined ? [] : ['Authorization', authorization]
  return {
    req: { rawHeaders, headers: authorization === undefined ? {} : { authorization } },
    query,
    route: r,
    identity: undefined,
    tokenDigest: undefined,
  } as unknown as RequestContext
}

/** Runs onRequest (sync or async) and returns the error it ended with, if any. */
async function run(stage: AuthnStage, c: RequestContext): Promise<GatewayError | undefined> {
  try {
    await stage.onRequest(c)
    return undefined
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err))
    return err
  }
}

async function setup(t: { after: (fn: () => Promise<void>) => void }, over: Partial<IssuerConfig> = {}) {
  const a = await startKeyServer()
  const b = await startKeyServer()
  const config = { issuers: [issuer('a', a, over), issuer('b', b, over)] } as unknown as Config
  const stage = createAuthnStage(config, deps)
  t.after(async () => {
    await stage.close()
    await a.close()
    await b.close()
  })
  await stage.start()
  return { a, b, stage }
}

const nowSec = () => Math.floor(clock.now / 1000)

for (const verifier of ['node-crypto', 'jose'] as const) {
  test(`[${verifier}] a valid token sets the identity and, once seen twice, is served from the cache`, async (t) => {
    const { a, stage } = await setup(t, { verifier })
    assert.equal(stage.ready(), true)
    const token = await a.sign({ scope: 'read write', jti: 'j-1', iat: nowSec(), exp: nowSec() + 120 })
    const first = ctx(route(), `Bearer ${token}`)
    assert.equal(await run(stage, first), undefined)
    const id = first.identity!
    assert.equal(id.issuerId, 'a')
    assert.equal(id.issuer, a.issuer)
    assert.equal(id.subject, 'user-1')
    assert.equal(id.clientId, 'client-1')
    assert.deepEqual([...id.scopes], ['read', 'write'])
    assert.equal(id.jti, 'j-1')
    assert.equal(id.tokenDigest?.length, 16)
    assert.equal(first.tokenDigest, id.tokenDigest)
    // Admission on second sight: the second request verifies again, then the identity is cached.
    const second = ctx(route(), `Bearer ${token}`)
    assert.equal(await run(stage, second), undefined)
    assert.notEqual(second.identity, id)
    const third = ctx(route(), `Bearer ${token}`)
    assert.equal(stage.onRequest(third), undefined, 'a cache hit answers synchronously')
    assert.equal(third.identity, second.identity, 'the cached identity is reused')
  })

  test(`[${verifier}] a cached identity is refused on a route that accepts other issuers only`, async (t) => {
    const { a, stage } = await setup(t, { verifier })
    const token = await a.sign()
    assert.equal(await run(stage, ctx(route(), `Bearer ${token}`)), undefined)
    const err = await run(stage, ctx(route({ issuers: ['b'] }), `Bearer ${token}`))
    assert.equal(err?.code, 'ERR_AUTHN_INVALID_TOKEN')
    assert.equal(err?.reason, 'issuer_not_allowed')
    assert.equal(await run(stage, ctx(route({ issuers: ['a'] }), `Bearer ${token}`)), undefined)
  })

  test(`[${verifier}] the cache never lets a token through after it expires`, async (t) => {
    const { a, stage } = await setup(t, { verifier })
    t.after(() => void (offsetMs = 0))
    const exp = nowSec() + 60
    const token = await a.sign({ iat: nowSec(), exp })
    assert.equal(await run(stage, ctx(route(), `Bearer ${token}`)), undefined)
    clock.now = exp * 1000 + 31_000
    const err = await run(stage, ctx(route(), `Bearer ${token}`))
    assert.equal(err?.code, 'ERR_AUTHN_EXPIRED')
  })

  test(`[${verifier}] each issuer's tokens verify with that issuer's keys only`, async (t) => {
    const { a, b, stage } = await setup(t, { verifier })
    assert.equal(await run(stage, ctx(route(), `Bearer ${await b.sign()}`)), undefined)
    // A token claiming issuer a, signed by b's key under a's kid.
    const forged = b.signRaw({ alg: 'RS256', kid: a.keys[0].kid, typ: 'at+jwt' }, a.defaultClaims())
    const err = await run(stage, ctx(route(), `Bearer ${forged}`))
    assert.equal(err?.reason, 'bad_signature')
  })

  test(`[${verifier}] an unknown kid refreshes the JWKS once per interval`, async (t) => {
    const { a, stage } = await setup(t, { verifier, unknownKidRefreshIntervalSec: 30 })
    t.after(() => void (offsetMs = 0))
    const rotated = await a.addKey()
    const token = await a.sign({}, { key: rotated })
    assert.equal(await run(stage, ctx(route(), `Bearer ${token}`)), undefined, 'the refresh finds the rotated key')
    const unpublished = await a.addKey('RS256', { publish: false })
    const fetches = a.requests.length
    const err = await run(stage, ctx(route(), `Bearer ${await a.sign({}, { key: unpublished })}`))
    assert.equal(err?.reason, 'unknown_kid')
    assert.equal(a.requests.length, fetches, 'within the interval: no fetch')
    clock.now += 30_000
    await run(stage, ctx(route(), `Bearer ${await a.sign({ iat: nowSec(), exp: nowSec() + 60 }, { key: unpublished })}`))
    assert.equal(a.requests.length, fetches + 1)
  })
}

test('a public route is left alone, whatever the request carries', async (t) => {
  const { stage } = await setup(t)
  const c = ctx(route({ auth: 'public' }), 'Bearer garbage', '?access_token=x')
  assert.equal(await run(stage, c), undefined)
  assert.equal(c.identity, undefined)
  assert.equal(c.tokenDigest, undefined)
})

test('a failed token still leaves its digest, not the token, on the context', async (t) => {
  const { stage } = await setup(t)
  const c = ctx(route(), 'Bearer not.a.jwt')
  const err = await run(stage, c)
  assert.equal(err?.reason, 'malformed')
  assert.equal(c.tokenDigest?.length, 16)
  assert.notEqual(c.tokenDigest, 'not.a.jwt')
})

test('a token from an issuer that is not configured is unknown_issuer', async (t) => {
  const { stage } = await setup(t)
  const other = await startKeyServer()
  t.after(() => other.close())
  const err = await run(stage, ctx(route(), `Bearer ${await other.sign()}`))
  assert.equal(err?.reason, 'unknown_issuer')
})

test('a token over 8 KiB is refused as too_large', async (t) => {
  const { a, stage } = await setup(t)
  const err = await run(stage, ctx(route(), `Bearer ${await a.sign({ pad: 'x'.repeat(9000) })}`))
  assert.equal(err?.reason, 'too_large')
})

test('an HS256 token whose secret is the issuer public key is refused (no key confusion)', async (t) => {
  const { a, stage } = await setup(t, { algorithms: ['RS256', 'HS256'] })
  const pem = Buffer.from(JSON.stringify(a.keys[0].publicJwk))
  const forged = signCompact({ alg: 'HS256', kid: a.keys[0].kid }, a.defaultClaims(), 'HS256', pem)
  const err = await run(stage, ctx(route(), `Bearer ${forged}`))
  assert.equal(err?.reason, 'alg_not_allowed')
})

test('an HS256 issuer with a shared secret accepts tokens signed with that secret only', async (t) => {
  const secret = 's'.repeat(32)
  const config = { issuers: [{ ...issuer('h', { issuer: 'https://hmac.example', jwksUri: '' }), jwksUri: undefined, algorithms: ['HS256'], sharedSecret: secret }] } as unknown as Config
  const stage = createAuthnStage(config, deps)
  t.after(() => stage.close())
  await stage.start()
  assert.equal(stage.ready(), true)
  const claims = { iss: 'https://hmac.example', aud: 'api://test', iat: nowSec(), exp: nowSec() + 60 }
  assert.equal(await run(stage, ctx(route(), `Bearer ${signCompact({ alg: 'HS256' }, claims, 'HS256', Buffer.from(secret))}`)), undefined)
  const err = await run(stage, ctx(route(), `Bearer ${signCompact({ alg: 'HS256' }, claims, 'HS256', Buffer.from('t'.repeat(32)))}`))
  assert.equal(err?.reason, 'bad_signature')
})

test('when no keys could ever be loaded the answer is ERR_AUTHN_IDP_UNAVAILABLE with Retry-After', async (t) => {
  const probe = createServer()
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  const ks = await startKeyServer()
  t.after(() => ks.close())
  const config = { issuers: [issuer('down', { issuer: ks.issuer, jwksUri: `http://127.0.0.1:${port}/jwks` })] } as unknown as Config
  const stage = createAuthnStage(config, deps)
  t.after(() => stage.close())
  await stage.start()
  assert.equal(stage.ready(), false)
  const err = await run(stage, ctx(route(), `Bearer ${await ks.sign()}`))
  assert.equal(err?.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
  assert.match(err?.headers?.['retry-after'] ?? '', /^[1-9][0-9]*$/)
})

test('two issuers with the same iss are a config error', () => {
  const ks = { issuer: 'https://same.example', jwksUri: 'https://same.example/jwks' }
  const config = { issuers: [issuer('one', ks), issuer('two', ks)] } as unknown as Config
  assert.throws(() => createAuthnStage(config, deps), /same issuer/)
})

test('keys.refreshed is reported for each issuer at start', async (t) => {
  const before = events.length
  await setup(t)
  const refreshed = events.slice(before).filter((e) => e.type === 'keys.refreshed').map((e) => e.issuer)
  assert.deepEqual(refreshed.sort(), ['a', 'b'])
})


test('presentedClaims: unverified payload for a new token, verified claims once cached, nothing for non-JWTs', async (t) => {
  const { a, stage } = await setup(t)
  const token = await a.sign({ client_id: 'app-9', sub: 'alice' })
  const first = ctx(route(), `Bearer ${token}`)
  const claimed = stage.presentedClaims(first)
  assert.equal(claimed?.client_id, 'app-9')
  assert.equal(stage.knownToken(first), false)
  // authn reuses the decode the limits stage asked for: one parse per request.
  const decoded = first.presentedToken?.jwt
  assert.ok(decoded)
  assert.equal(await run(stage, first), undefined)
  assert.equal(first.presentedToken?.jwt, decoded)
  assert.equal(await run(stage, ctx(route(), `Bearer ${token}`)), undefined, 'second sight: now cached')
  const second = ctx(route(), `Bearer ${token}`)
  assert.equal(stage.knownToken(second), true)
  assert.equal(stage.presentedClaims(second)?.client_id, 'app-9')
  assert.ok(Object.isFrozen(stage.presentedClaims(second)), 'a cached token answers with its verified (frozen) claims')
  assert.equal(second.presentedToken?.jwt, undefined, 'a cached token is not decoded again')
  assert.equal(stage.presentedClaims(ctx(route(), 'Bearer not-a-jwt')), undefined)
  assert.equal(stage.presentedClaims(ctx(route(), 'Basic dXNlcjpwYXNz')), undefined)
  assert.equal(stage.presentedClaims(ctx(route())), undefined)
  const forged = ctx(route(), `Bearer ${token.slice(0, -4)}AAAA`)
  assert.equal(stage.presentedClaims(forged)?.client_id, 'app-9', 'claimed, not verified')
  const foreign = `${token.split('.')[0]}.${Buffer.from(JSON.stringify({ iss: 'https://not-configured.example', client_id: 'app-9' })).toString('base64url')}.AAAA`
  assert.equal(stage.presentedClaims(ctx(route(), `Bearer ${foreign}`)), undefined, 'an issuer we do not accept names no account of ours')
  assert.equal((await run(stage, forged))?.code, 'ERR_AUTHN_INVALID_TOKEN')
})

test('knownToken is true only when authn will accept the request from its cache', async (t) => {
  const { a, stage } = await setup(t)
  const token = await a.sign()
  for (let i = 0; i < 2; i++) assert.equal(await run(stage, ctx(route(), `Bearer ${token}`)), undefined)
  assert.equal(stage.knownToken(ctx(route(), `Bearer ${token}`)), true)
  // Cached, but authn would refuse each of these: the hint must not let limits defer its checks.
  assert.equal(stage.knownToken(ctx(route(), `Bearer ${token}`, '?access_token=x')), false)
  assert.equal(stage.knownToken(ctx(route({ issuers: ['b'] }), `Bearer ${token}`)), false)
  const twoHeaders = ctx(route(), `Bearer ${token}`)
  ;(twoHeaders.req as { rawHeaders: string[] }).rawHeaders = ['Authorization', `Bearer ${token}`, 'Authorization', 'Bearer other']
  assert.equal(stage.knownToken(twoHeaders), false)
  for (const c of [ctx(route(), `Bearer ${token}`, '?access_token=x'), ctx(route({ issuers: ['b'] }), `Bearer ${token}`), twoHeaders]) {
    assert.notEqual(await run(stage, c), undefined, 'authn refuses it')
  }
})

test('a cached token gets the answer a new token gets, in every spelling of the Authorization field', async (t) => {
  const { a, stage } = await setup(t)
  // A jti each: RS256 signatures are deterministic, so equal claims would make equal tokens.
  let n = 0
  const newToken = () => a.sign({ jti: `t-${n++}` })
  const cachedToken = await newToken()
  for (let i = 0; i < 2; i++) assert.equal(await run(stage, ctx(route(), `Bearer ${cachedToken}`)), undefined)
  assert.equal(stage.knownToken(ctx(route(), `Bearer ${cachedToken}`)), true, 'cached')
  const spellings: Array<{ name: string; make: (token: string) => RequestContext }> = [
    { name: 'plain', make: (tk) => ctx(route(), `Bearer ${tk}`) },
    { name: 'lower-case scheme', make: (tk) => ctx(route(), `bearer ${tk}`) },
    { name: 'upper-case scheme', make: (tk) => ctx(route(), `BEARER ${tk}`) },
    { name: 'two spaces', make: (tk) => ctx(route(), `Bearer  ${tk}`) },
    { name: 'trailing space', make: (tk) => ctx(route(), `Bearer ${tk} `) },
    { name: 'tab', make: (tk) => ctx(route(), `Bearer\t${tk}`) },
    { name: 'token also in the query', make: (tk) => ctx(route(), `Bearer ${tk}`, '?access_token=x') },
    { name: 'route accepts issuer b only', make: (tk) => ctx(route({ issuers: ['b'] }), `Bearer ${tk}`) },
    {
      name: 'two Authorization fields',
      make: (tk) => {
        const c = ctx(route(), `Bearer ${tk}`)
        ;(c.req as { rawHeaders: string[] }).rawHeaders = ['Authorization', `Bearer ${tk}`, 'authorization', `Bearer ${tk}`]
        return c
      },
    },
  ]
  for (const { name, make } of spellings) {
    const fresh = await run(stage, make(await newToken()))
    const cached = make(cachedToken)
    const got = await run(stage, cached)
    assert.deepEqual([got?.code, got?.reason], [fresh?.code, fresh?.reason], name)
    if (got === undefined) assert.equal(cached.identity?.issuerId, 'a', `${name}: identity set`)
    else assert.equal(cached.identity, undefined, `${name}: no identity on a refusal`)
  }
})
