import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createVerifier, isVerifyError, type Verifier, type VerifierOptions } from '@portcullis/verify'
import { garble, signCompact } from './fixtures/attack-tokens.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { nowSec, refusal } from './helpers/refusal.js'

const AUDIENCE = 'api://orders'
const TYP = 'at+jwt'
const AT = { audience: AUDIENCE, typ: TYP }

describe('verify()', () => {
  let js: JwksServer
  let verifier: Verifier

  before(async () => {
    js = await startJwksServer()
    verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, requiredTyp: TYP })
  })
  after(() => js?.close())

  test('takes an Authorization header value, with any casing of the scheme and several spaces, or a bare token', async () => {
    const token = js.sign(AT)
    for (const value of [`Bearer ${token}`, `bearer ${token}`, `BEARER   ${token}`, token]) {
      assert.equal((await verifier.verify(value)).subject, 'user-1')
    }
  })

  test('no credentials, or credentials of another scheme, are ERR_AUTHN_MISSING with a challenge without error', async () => {
    for (const [value, reason] of [
      [undefined, 'no_credentials'],
      [null, 'no_credentials'],
      ['', 'no_credentials'],
      ['Basic dXNlcjpwYXNz', 'unsupported_scheme'],
      ['DPoP abc', 'unsupported_scheme'],
    ] as const) {
      const err = await refusal(verifier.verify(value))
      assert.equal(err.code, 'ERR_AUTHN_MISSING', String(value))
      assert.equal(err.reason, reason)
      assert.equal(err.status, 401)
      assert.equal(err.wwwAuthenticate(), 'Bearer realm="portcullis"')
    }
  })

  test('a broken bearer credential is ERR_AUTHN_MALFORMED, 400 invalid_request', async () => {
    for (const value of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer tok"en', 'tok"en', 'Bearer\tx']) {
      const err = await refusal(verifier.verify(value))
      assert.equal(err.code, 'ERR_AUTHN_MALFORMED', value)
      assert.equal(err.status, 400)
      assert.equal(err.wwwAuthenticate(), 'Bearer realm="portcullis", error="invalid_request"')
      assert.ok(err.toProblem().detail, 'a malformed request is told how to fix it')
    }
  })

  test('the identity carries subject, client, scopes, issuer, audience, jti, expiry and all claims, frozen', async () => {
    const exp = nowSec() + 120
    const identity = await verifier.verify(js.sign(AT, { scope: 'orders:read  orders:write', jti: 'j-1', exp, aud: [AUDIENCE, 'api://other'], tenant: { id: 't1' } }))
    assert.equal(identity.subject, 'user-1')
    assert.equal(identity.clientId, 'client-1')
    assert.deepEqual([...identity.scopes], ['orders:read', 'orders:write'])
    assert.equal(identity.issuer, js.issuer)
    assert.deepEqual(identity.audience, [AUDIENCE, 'api://other'])
    assert.equal(identity.jti, 'j-1')
    assert.equal(identity.expiresAt, exp * 1000)
    assert.equal(identity.act, undefined)
    assert.deepEqual(identity.claims.tenant, { id: 't1' })
    assert.match(identity.tokenDigest, /^[A-Za-z0-9_-]{16}$/)
    assert.ok(Object.isFrozen(identity) && Object.isFrozen(identity.claims) && Object.isFrozen(identity.claims.tenant))
    assert.throws(() => (identity.scopes as Set<string>).add('admin'), TypeError)
    assert.throws(() => (identity.scopes as Set<string>).delete('orders:read'), TypeError)
    assert.equal(identity.scopes.has('admin'), false)
  })

  test('scopes come from an scp array when there is no scope string, and the client from azp without client_id', async () => {
    const identity = await verifier.verify(js.sign(AT, { scope: undefined, scp: ['a', 'b'], client_id: undefined, azp: 'spa' }))
    assert.deepEqual([...identity.scopes], ['a', 'b'])
    assert.equal(identity.clientId, 'spa')
  })

  test('scp may also be a space-delimited string, as in Microsoft Entra ID access tokens', async () => {
    const identity = await verifier.verify(js.sign(AT, { scope: undefined, scp: 'User.Read  Mail.Send' }))
    assert.deepEqual([...identity.scopes], ['User.Read', 'Mail.Send'])
    const both = await verifier.verify(js.sign(AT, { scope: 'orders:read', scp: 'User.Read' }))
    assert.deepEqual([...both.scopes], ['orders:read'], 'scope takes precedence')
  })

  test('an scp entry or scope part that is not an RFC 6749 scope-token refuses the token instead of becoming other scopes', async () => {
    for (const claims of [{ scope: undefined, scp: ['basic', 'x orders:admin'] }, { scp: ['basic', 'a"b'] }, { scope: 'basic\torders:admin' }, { scope: 'ordérs' }]) {
      const err = await refusal(verifier.verify(js.sign(AT, claims)))
      assert.equal(err.code, 'ERR_AUTHN_INVALID_TOKEN', JSON.stringify(claims))
      assert.equal(err.reason, 'claim_type', JSON.stringify(claims))
    }
  })

  test('an RFC 8693 actor claim, nested for a delegation chain, is exposed as identity.act', async () => {
    const act = { sub: 'gateway', iss: 'https://gw.example', act: { sub: 'batch-service' } }
    const identity = await verifier.verify(js.sign(AT, { act }))
    assert.deepEqual(identity.act, act)
    assert.equal(identity.act?.act?.sub, 'batch-service')
  })

  test('claims of the wrong type are refused rather than exposed', async () => {
    for (const claims of [{ act: 'gateway' }, { act: { sub: 42 } }, { scope: ['a'] }, { scp: { a: 'b' } }, { sub: 7 }, { client_id: {} }, { exp: '9999999999' }, { nbf: 'soon' }]) {
      const err = await refusal(verifier.verify(js.sign(AT, claims)))
      assert.equal(err.reason, 'claim_type', JSON.stringify(claims))
    }
  })

  test('an actor chain deeper than eight is refused', async () => {
    let act: Record<string, unknown> = { sub: 'a0' }
    for (let i = 1; i < 10; i++) act = { sub: `a${i}`, act }
    assert.equal((await refusal(verifier.verify(js.sign(AT, { act })))).reason, 'claim_type')
  })

  test('an iat in the future beyond the tolerance is refused', async () => {
    const err = await refusal(verifier.verify(js.sign(AT, { iat: nowSec() + 120 })))
    assert.equal(err.reason, 'iat_in_future')
  })

  test('errors carry the realm the verifier was configured with', async () => {
    const named = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, realm: 'orders "v2"' })
    const err = await refusal(named.verify('Bearer x.y.z'))
    assert.equal(err.wwwAuthenticate(), 'Bearer realm="orders \\"v2\\"", error="invalid_token"')
    assert.equal(named.realm, 'orders "v2"')
  })
})

describe('time, with an injected clock', () => {
  let js: JwksServer
  before(async () => (js = await startJwksServer({ alg: 'ES256' })))
  after(() => js?.close())

  test('a token is accepted up to exp plus the tolerance and refused from then on, even when it was cached', async () => {
    let now = Date.now()
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, clockToleranceSec: 10, now: () => now })
    const exp = Math.floor(now / 1000) + 60
    const token = js.sign(AT, { exp })
    await verifier.verify(token)
    now = exp * 1000 + 9_000
    // Past exp but within the tolerance: the cache no longer answers (it never trusts a token
    // past exp), full verification does and still accepts.
    await verifier.verify(token)
    now = exp * 1000 + 10_000
    const err = await refusal(verifier.verify(token))
    assert.equal(err.code, 'ERR_AUTHN_EXPIRED')
    assert.equal(err.wwwAuthenticate(), 'Bearer realm="portcullis", error="invalid_token"')
  })

  test('a token not valid yet is accepted once the clock reaches nbf minus the tolerance', async () => {
    let now = Date.now()
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, clockToleranceSec: 5, now: () => now })
    const nbf = Math.floor(now / 1000) + 100
    const token = js.sign(AT, { nbf, exp: nbf + 60 })
    assert.equal((await refusal(verifier.verify(token))).reason, 'not_yet_valid')
    now = (nbf - 5) * 1000
    assert.equal((await verifier.verify(token)).subject, 'user-1')
  })

  test('maxTokenAgeSec requires iat and refuses older tokens, cached or not', async () => {
    let now = Date.now()
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, maxTokenAgeSec: 30, clockToleranceSec: 0, now: () => now })
    const iat = Math.floor(now / 1000)
    const token = js.sign(AT, { iat, exp: iat + 300 })
    await verifier.verify(token)
    now = (iat + 31) * 1000
    assert.equal((await refusal(verifier.verify(token))).reason, 'too_old')
    assert.equal((await refusal(verifier.verify(js.sign(AT, { iat: undefined })))).reason, 'missing_iat')
  })

  test('a longer lifetime than maxTokenLifetimeSec is refused, also without iat', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, maxTokenLifetimeSec: 600 })
    assert.equal((await refusal(verifier.verify(js.sign(AT, { exp: nowSec() + 900 })))).reason, 'lifetime')
    assert.equal((await refusal(verifier.verify(js.sign(AT, { iat: undefined, exp: nowSec() + 900 })))).reason, 'lifetime')
    await verifier.verify(js.sign(AT, { exp: nowSec() + 500 }))
  })
})

describe('the verified-token cache', () => {
  let js: JwksServer
  before(async () => (js = await startJwksServer({ alg: 'EdDSA' })))
  after(() => js?.close())

  test('answers a repeated token with the same identity, and forgets the oldest beyond its size', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, tokenCacheSize: 2 })
    const [a, b, c] = [js.sign(AT, { sub: 'a' }), js.sign(AT, { sub: 'b' }), js.sign(AT, { sub: 'c' })]
    const first = await verifier.verify(a)
    assert.equal(await verifier.verify(`Bearer ${a}`), first, 'same token, header or bare: a cache hit')
    await verifier.verify(b)
    await verifier.verify(c)
    const again = await verifier.verify(a)
    assert.notEqual(again, first, 'a was evicted and verified afresh')
    assert.deepEqual(again, first)
  })

  test('a token cached twice (two verifications at once) holds one place, and is not evicted by its first', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, tokenCacheSize: 2 })
    const [a, b] = [js.sign(AT, { sub: 'a' }), js.sign(AT, { sub: 'b' })]
    const both = await Promise.all([verifier.verify(a), verifier.verify(a)])
    assert.notEqual(both[0], both[1], 'both verified: neither found the other in the cache')
    await verifier.verify(b)
    const again = await verifier.verify(a)
    assert.ok(again === both[0] || again === both[1], 'a is still cached after one newer token')
  })

  test('is off with tokenCacheSize 0', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, tokenCacheSize: 0 })
    const token = js.sign(AT)
    assert.notEqual(await verifier.verify(token), await verifier.verify(token))
  })

  test('a token differing in one byte of its signature misses the cache and is refused', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })
    const token = js.sign(AT)
    await verifier.verify(token)
    assert.equal((await refusal(verifier.verify(garble(token)))).reason, 'bad_signature')
  })
})

describe('key sources', () => {
  let js: JwksServer
  before(async () => (js = await startJwksServer({ alg: 'ES256' })))
  after(() => js?.close())

  test('a local JWKS object verifies without any fetch', async () => {
    const before = js.requests.length
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwks: { keys: js.keys.map((k) => k.publicJwk) } })
    assert.equal((await verifier.verify(js.sign(AT))).subject, 'user-1')
    const stray = await js.addKey('ES256', { publish: false })
    assert.equal((await refusal(verifier.verify(js.sign(AT, {}, { key: stray })))).reason, 'unknown_kid')
    assert.equal(js.requests.length, before)
  })

  test('a kid-less token is checked against the keys that fit its alg', async () => {
    await js.addKey('ES256')
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })
    const second = js.keys[js.keys.length - 1]
    const token = js.sign(AT, { sub: 'no-kid' }, { key: second, header: { kid: undefined } })
    assert.equal((await verifier.verify(token)).subject, 'no-kid')
    const stray = await js.addKey('ES256', { publish: false })
    const forged = js.sign(AT, {}, { key: stray, header: { kid: undefined } })
    assert.equal((await refusal(verifier.verify(forged))).reason, 'bad_signature')
    js.removeKey(second.kid)
  })

  test('HS256 is verified with the configured secret only, never with a symmetric key published in the JWKS', async () => {
    const secret = randomBytes(32)
    const published = randomBytes(32)
    js.keys.push({ kid: 'oct-1', alg: 'HS256', privateKey: undefined as never, publicJwk: { kty: 'oct', k: published.toString('base64url'), kid: 'oct-1', alg: 'HS256' } })
    try {
      const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, algorithms: ['ES256', 'HS256'], secret })
      const claims = { iss: js.issuer, aud: AUDIENCE, sub: 'hmac', iat: nowSec(), exp: nowSec() + 60 }
      assert.equal((await verifier.verify(signCompact({ alg: 'HS256', typ: TYP }, claims, 'HS256', secret))).subject, 'hmac')
      const withPublished = signCompact({ alg: 'HS256', typ: TYP, kid: 'oct-1' }, claims, 'HS256', published)
      assert.equal((await refusal(verifier.verify(withPublished))).reason, 'bad_signature')
      // And with asymmetric algorithms only (the default), HS256 is not even considered.
      const strict = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })
      assert.equal((await refusal(strict.verify(withPublished))).reason, 'alg_not_allowed')
    } finally {
      js.removeKey('oct-1')
    }
  })

  test('a discovery document naming another issuer is not trusted, and its jwks_uri is never fetched', async () => {
    js.discoveryOverrides = { issuer: 'https://attacker.example' }
    try {
      const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, discoveryUrl: js.discoveryUrl })
      const before = js.jwksFetches()
      const err = await refusal(verifier.verify(js.sign(AT)))
      assert.equal(err.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
      assert.equal(err.reason, 'discovery_issuer_mismatch')
      assert.equal(js.jwksFetches(), before)
    } finally {
      js.discoveryOverrides = {}
    }
  })
})

describe('when the issuer is unavailable', () => {
  let js: JwksServer
  before(async () => (js = await startJwksServer({ alg: 'EdDSA' })))
  after(() => js?.close())

  test('keys that were never loaded give 503 ERR_AUTHN_IDP_UNAVAILABLE with Retry-After and no challenge, then back off', async () => {
    js.mode = 'down'
    let now = Date.now()
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, now: () => now })
    try {
      const token = js.sign(AT)
      const err = await refusal(verifier.verify(token))
      assert.equal(err.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
      assert.equal(err.status, 503)
      assert.equal(err.reason, 'status_503')
      assert.equal(err.wwwAuthenticate(), undefined)
      assert.equal(err.headers()['retry-after'], String(err.retryAfterSec))
      assert.equal(err.headers()['www-authenticate'], undefined)
      const fetches = js.jwksFetches()
      assert.equal((await refusal(verifier.verify(token))).reason, 'backoff')
      assert.equal(js.jwksFetches(), fetches, 'no fetch during the back-off')
      await assert.rejects(verifier.warmUp(), (e: unknown) => isVerifyError(e) && e.code === 'ERR_AUTHN_IDP_UNAVAILABLE')
      js.mode = 'up'
      now += (err.retryAfterSec! + 1) * 1000
      assert.equal((await verifier.verify(token)).subject, 'user-1')
    } finally {
      js.mode = 'up'
    }
  })

  test('a failed refresh keeps the last good keys: an IdP outage does not become the service outage', async () => {
    const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, jwksCacheMaxAgeSec: 0, tokenCacheSize: 0 })
    await verifier.warmUp()
    js.mode = 'down'
    try {
      assert.equal((await verifier.verify(js.sign(AT, { sub: 'during-outage' }))).subject, 'during-outage')
      assert.equal((await verifier.verify(js.sign(AT, { sub: 'still' }))).subject, 'still')
      const stray = await js.addKey('EdDSA', { publish: false })
      assert.equal((await refusal(verifier.verify(js.sign(AT, {}, { key: stray })))).reason, 'unknown_kid')
    } finally {
      js.mode = 'up'
    }
  })

  test('a JWKS endpoint that never answers times out into ERR_AUTHN_IDP_UNAVAILABLE', async () => {
    js.mode = 'hang'
    try {
      const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri, fetchTimeoutMs: 200 })
      const err = await refusal(verifier.verify(js.sign(AT)))
      assert.equal(err.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
      assert.equal(err.reason, 'timeout')
    } finally {
      js.mode = 'up'
    }
  })

  test('an oversized JWKS is a failed fetch, not a memory problem', async () => {
    js.mode = 'huge'
    try {
      const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })
      const err = await refusal(verifier.verify(js.sign(AT)))
      assert.equal(err.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
      assert.equal(err.reason, 'too_large')
    } finally {
      js.mode = 'up'
    }
  })
})

describe('createVerifier options', () => {
  const base: VerifierOptions = { issuer: 'https://idp.example', audience: AUDIENCE, jwksUri: 'https://idp.example/jwks' }
  const rsaPublic = { kty: 'RSA', n: 'sXch', e: 'AQAB', kid: 'r' }

  test('unsafe or incomplete options are refused when the verifier is created', () => {
    const bad: Array<[string, Partial<VerifierOptions> & Record<string, unknown>]> = [
      ['alg none', { algorithms: ['none'] }],
      ['alg NONE', { algorithms: ['RS256', 'NONE'] }],
      ['HS256 without secret', { algorithms: ['HS256'] }],
      ['short secret', { algorithms: ['HS256'], secret: 'too-short' }],
      ['secret without HS*', { secret: randomBytes(32) }],
      ['unknown alg', { algorithms: ['XS256'] }],
      ['empty algorithms', { algorithms: [] }],
      ['no audience', { audience: undefined }],
      ['empty audience list', { audience: [] }],
      ['empty audience', { audience: '' }],
      ['no issuer', { issuer: '' }],
      ['no key source', { jwksUri: undefined }],
      ['two key sources', { discoveryUrl: 'https://idp.example/.well-known/openid-configuration' }],
      ['not a URL', { jwksUri: 'idp.example/jwks' }],
      ['not http', { jwksUri: 'file:///etc/jwks.json' }],
      ['private key in jwks', { jwksUri: undefined, jwks: { keys: [{ ...rsaPublic, d: 'x' }] } }],
      ['symmetric key in jwks', { jwksUri: undefined, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }],
      ['negative tolerance', { clockToleranceSec: -1 }],
      ['fractional cache size', { tokenCacheSize: 1.5 }],
    ]
    for (const [label, override] of bad) {
      assert.throws(() => createVerifier({ ...base, ...override } as VerifierOptions), TypeError, label)
    }
  })

  test('HS256 alone needs no key source, only a secret', async () => {
    const secret = randomBytes(32)
    const verifier = createVerifier({ issuer: 'https://idp.example', audience: AUDIENCE, algorithms: ['HS256'], secret })
    const claims = { iss: 'https://idp.example', aud: AUDIENCE, sub: 's', exp: nowSec() + 60 }
    const token = signCompact({ alg: 'HS256' }, claims, 'HS256', secret)
    assert.equal((await verifier.verify(token)).subject, 's')
  })
})
