import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createPublicKey, generateKeyPairSync, KeyObject, type JsonWebKey, type webcrypto } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'
import { baseConfig, startGateway, type StartedGateway } from '../helpers/gateway.js'
import { bearer, send } from '../helpers/limits.js'
import { signCompact, startKeyServer, unsignedToken, type KeyServer } from '../helpers/keys.js'
import { startUpstream, type RecordingUpstream } from '../helpers/upstream.js'
// The same hand-crafted cases the @portcullis/verify library is tested with (shared fixtures).
import { buildAcceptedCases, buildAttackCases } from '../../packages/verify/test/fixtures/attack-tokens.js'

/**
 * Hand-crafted attack tokens against the built gateway, once per signature path. Every case must
 * be refused identically by both paths, and nothing refused may reach the upstream or the logs.
 */

const digestOf = (token: string) => createHash('sha256').update(token).digest('base64url').slice(0, 16)

/** What each verifier answered, per case, compared at the end. */
const outcomes: Record<string, Record<string, { status: number; code: unknown; reason: unknown }>> = {}
/** Every token sent by any case: none may ever appear in the gateway's output. */
const tokensSent = new Set<string>()
const gateways: StartedGateway[] = []

const VERIFIERS = ['node-crypto', 'jose'] as const

for (const verifier of VERIFIERS) {
  describe(`attack tokens against the ${verifier} signature path`, () => {
    let ks: KeyServer
    let up: RecordingUpstream
    let gw: StartedGateway
    let trap: Server
    let trapUrl = ''
    const trapHits: string[] = []
    const record: Record<string, { status: number; code: unknown; reason: unknown }> = (outcomes[verifier] = {})

    before(async () => {
      ks = await startKeyServer()
      up = await startUpstream()
      // A server a forged jku/x5u points at; the gateway must never call it.
      trap = createServer((req, res) => {
        trapHits.push(req.url ?? '')
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}')
      })
      await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r))
      trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`
      gw = await startGateway(
        baseConfig({
          issuers: [
            {
              id: 'test',
              issuer: ks.issuer,
              jwksUri: ks.jwksUri,
              audiences: ['api://test'],
              requiredTyp: 'at+jwt',
              unknownKidRefreshIntervalSec: 0,
              verifier,
            },
          ],
          upstreams: [{ id: 'api', url: up.url }],
          routes: [{ id: 'api', path: '/api/**', methods: ['GET'], upstream: 'api', auth: 'required', scopes: { allOf: ['read'] } }],
          // This suite sends dozens of bad tokens from one address on purpose; brute-force
          // throttling (on by default) is tested on its own.
          limits: { bruteForce: { enabled: false } },
        }),
      )
      gateways.push(gw)
    })

    after(async () => {
      await gw?.stop()
      await up?.close()
      await ks?.close()
      await new Promise<void>((r) => (trap ? trap.close(() => r()) : r()))
    })

    /**
     * Sends one refused request and checks the whole answer: status, problem+json, code,
     * WWW-Authenticate, nothing forwarded, and a security event with the reason and the token
     * digest (never the token).
     */
    async function refused(
      name: string,
      headers: Record<string, string | string[]>,
      expect: { status: number; code: string; reason?: string; challenge: 'invalid_token' | 'invalid_request' | 'none'; token?: string },
      path = '/api/items',
    ): Promise<void> {
      if (expect.token) tokensSent.add(expect.token)
      const before = up.received.length
      const res = await send(gw.url, path, { headers })
      assert.equal(res.status, expect.status, `${name}: status`)
      assert.equal(res.headers['content-type'], 'application/problem+json', `${name}: content-type`)
      assert.equal(res.body.code, expect.code, `${name}: code`)
      const challenge = res.headers['www-authenticate'] as string | undefined
      assert.match(challenge ?? '', /^Bearer realm="[^"]*"/, `${name}: WWW-Authenticate`)
      if (expect.challenge === 'none') assert.doesNotMatch(challenge!, /error=/, `${name}: no error param`)
      else assert.match(challenge!, new RegExp(`error="${expect.challenge}"`), `${name}: error param`)
      assert.equal(up.received.length, before, `${name}: nothing reached the upstream`)
      const requestId = res.headers['x-request-id'] as string
      const event = await gw.waitFor((l) => l.name === 'security' && l.requestId === requestId)
      assert.equal(event.code, expect.code, `${name}: event code`)
      if (expect.reason) assert.equal(event.reason, expect.reason, `${name}: event reason`)
      if (expect.token) assert.equal(event.tokenDigest, digestOf(expect.token), `${name}: event names the token by digest`)
      record[name] = { status: res.status, code: res.body.code, reason: event.reason }
    }

    const invalid = (name: string, token: string, reason: string) =>
      refused(name, bearer(token), { status: 401, code: 'ERR_AUTHN_INVALID_TOKEN', reason, challenge: 'invalid_token', token })

    async function accepted(name: string, token: string): Promise<void> {
      tokensSent.add(token)
      const before = up.received.length
      const res = await send(gw.url, '/api/items', { headers: bearer(token) })
      assert.equal(res.status, 200, `${name}: status (${JSON.stringify(res.body)})`)
      assert.equal(up.received.length, before + 1, `${name}: the upstream got the request`)
      assert.equal(up.received.at(-1)!.url, '/api/items')
      record[name] = { status: res.status, code: undefined, reason: undefined }
    }

    test('every attack case shared with @portcullis/verify is refused with the same code and reason', async () => {
      const ctx = { issuer: ks.issuer, audience: 'api://test', typ: 'at+jwt', key: ks.keys[0], trapUrl, claims: { scope: 'read' } }
      for (const c of await buildAcceptedCases(ctx)) await accepted(`shared:${c.name}`, c.token)
      const cases = await buildAttackCases(ctx)
      assert.ok(cases.length >= 20)
      for (const c of cases) {
        await refused(`shared:${c.name}`, bearer(c.token), { status: c.expect.status, code: c.expect.code, reason: c.expect.reason, challenge: c.expect.error, token: c.token })
      }
      assert.deepEqual(trapHits, [], 'no URL named in a token was ever fetched')
    })

    test('a valid access token is accepted and forwarded', async () => {
      await accepted('valid', await ks.sign())
    })

    test('typ "application/at+jwt" satisfies requiredTyp "at+jwt"', async () => {
      await accepted('typ-with-prefix', await ks.sign({}, { typ: 'application/at+jwt' }))
    })

    test('a request without credentials gets 401 ERR_AUTHN_MISSING and a challenge without an error code', async () => {
      await refused('missing', {}, { status: 401, code: 'ERR_AUTHN_MISSING', challenge: 'none' })
    })

    test('alg "none" is refused in every casing', async () => {
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        await invalid(`alg-${alg}`, unsignedToken({ alg, typ: 'at+jwt' }, ks.defaultClaims()), 'alg_not_allowed')
      }
    })

    test('an HS256 token signed with the RSA public key (PEM or JWK bytes) is refused', async () => {
      const jwk = ks.keys[0].publicJwk
      const pem = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string
      for (const [label, secret] of [
        ['pem', Buffer.from(pem)],
        ['jwk', Buffer.from(JSON.stringify(jwk))],
      ] as const) {
        const token = signCompact({ alg: 'HS256', kid: ks.keys[0].kid, typ: 'at+jwt' }, ks.defaultClaims(), 'HS256', secret)
        await invalid(`hs256-with-public-key-${label}`, token, 'alg_not_allowed')
      }
    })

    test('a token carrying its own key in a jwk header is refused', async () => {
      const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
      const attackerJwk = await exportJWK(publicKey)
      const priv = KeyObject.from(privateKey as unknown as webcrypto.CryptoKey)
      const token = signCompact({ alg: 'RS256', typ: 'at+jwt', jwk: attackerJwk }, ks.defaultClaims(), 'RS256', priv)
      await invalid('embedded-jwk', token, 'embedded_key_header')
      const withKid = signCompact({ alg: 'RS256', typ: 'at+jwt', kid: 'attacker', jwk: { ...attackerJwk, kid: 'attacker' } }, ks.defaultClaims(), 'RS256', priv)
      await invalid('embedded-jwk-with-kid', withKid, 'embedded_key_header')
    })

    test('jku and x5u headers are refused and the URLs they name are never fetched', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      for (const header of ['jku', 'x5u']) {
        const token = signCompact({ alg: 'RS256', typ: 'at+jwt', kid: `trap-${header}`, [header]: `${trapUrl}/${header}` }, ks.defaultClaims(), 'RS256', privateKey)
        await invalid(`${header}-header`, token, 'embedded_key_header')
      }
      const { privateKey: p2 } = await generateKeyPair('RS256', { extractable: true })
      const x5c = signCompact({ alg: 'RS256', typ: 'at+jwt', x5c: ['MIIB'] }, ks.defaultClaims(), 'RS256', KeyObject.from(p2 as unknown as webcrypto.CryptoKey))
      await invalid('x5c-header', x5c, 'embedded_key_header')
      assert.deepEqual(trapHits, [], 'the gateway never contacted the URL in the token')
    })

    test('an unknown kid is refused, and a key rotated into the JWKS is accepted after the refresh', async () => {
      const stray = await ks.addKey('RS256', { publish: false })
      await invalid('unknown-kid', await ks.sign({}, { key: stray }), 'unknown_kid')
      const rotated = await ks.addKey()
      await accepted('rotated-kid', await ks.sign({}, { key: rotated }))
    })

    test('a cached token stops being accepted once its key leaves the JWKS', async () => {
      const retiring = await ks.addKey()
      const token = await ks.sign({}, { key: retiring })
      // Sent three times: verified twice (a token is cached on its second verification), then a cache hit.
      for (let i = 0; i < 3; i++) await accepted(`key-retiring-${i}`, token)
      // The IdP drops the key (revoked after a compromise, say) and publishes another; a token with
      // the new kid makes the gateway refresh the key set.
      ks.keys.splice(ks.keys.indexOf(retiring), 1)
      const successor = await ks.addKey()
      await accepted('key-successor', await ks.sign({}, { key: successor }))
      await invalid('key-removed-cached-token', token, 'unknown_kid')
    })

    test('an expired token gets 401 ERR_AUTHN_EXPIRED with error="invalid_token"', async () => {
      const now = Math.floor(Date.now() / 1000)
      const token = await ks.sign({ iat: now - 600, exp: now - 300 })
      await refused('expired', bearer(token), { status: 401, code: 'ERR_AUTHN_EXPIRED', reason: 'expired', challenge: 'invalid_token', token })
    })

    test('a token that is not valid yet (nbf in the future) is refused', async () => {
      await invalid('not-yet-valid', await ks.sign({ nbf: Math.floor(Date.now() / 1000) + 600 }), 'not_yet_valid')
    })

    test('a token without exp is refused', async () => {
      const claims = ks.defaultClaims()
      delete claims.exp
      await invalid('missing-exp', ks.signRaw({ alg: 'RS256', kid: ks.keys[0].kid, typ: 'at+jwt' }, claims), 'missing_exp')
    })

    test('a token whose lifetime exceeds maxTokenLifetimeSec is refused', async () => {
      const now = Math.floor(Date.now() / 1000)
      await invalid('lifetime', await ks.sign({ iat: now, exp: now + 24 * 3600 }), 'lifetime')
    })

    test('a token from another issuer is refused', async () => {
      await invalid('wrong-iss', await ks.sign({ iss: 'https://attacker.example' }), 'unknown_issuer')
      await invalid('iss-trailing-slash', await ks.sign({ iss: ks.issuer + '/' }), 'unknown_issuer')
    })

    test('a token for another audience is refused', async () => {
      await invalid('wrong-aud', await ks.sign({ aud: 'api://other' }), 'wrong_audience')
    })

    test('a garbled signature is refused', async () => {
      const token = await ks.sign()
      const i = token.lastIndexOf('.') + 20
      await invalid('garbled-signature', token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1), 'bad_signature')
    })

    test('an oversized token is refused before parsing', async () => {
      await invalid('too-large', await ks.sign({ pad: 'x'.repeat(9 * 1024) }), 'too_large')
    })

    test('an ID token (nonce) is not accepted as an access token', async () => {
      await invalid('id-token', await ks.sign({ nonce: 'n-0S6_WzA2Mj' }), 'id_token_markers')
    })

    test('a token with a crit header is refused', async () => {
      const token = ks.signRaw({ alg: 'RS256', kid: ks.keys[0].kid, typ: 'at+jwt', crit: ['exp'], exp: 1 }, ks.defaultClaims())
      await invalid('crit', token, 'crit')
    })

    test('a typ other than the required at+jwt is refused', async () => {
      await invalid('typ-jwt', await ks.sign({}, { typ: 'JWT' }), 'typ')
    })

    test('a token in the query string is refused with 400 and error="invalid_request", with or without a header', async () => {
      const token = await ks.sign()
      tokensSent.add(token)
      const expect = { status: 400, code: 'ERR_AUTHN_MALFORMED', reason: 'query_token', challenge: 'invalid_request' } as const
      await refused('query-token', {}, expect, `/api/items?access_token=${token}`)
      await refused('query-token-and-header', bearer(token), expect, `/api/items?x=1&access_token=${token}`)
    })

    test('two Authorization headers are refused with 400 even when both carry valid tokens', async () => {
      const token = await ks.sign()
      tokensSent.add(token)
      await refused(
        'two-authorization-headers',
        { authorization: [`Bearer ${token}`, `Bearer ${token}`] },
        { status: 400, code: 'ERR_AUTHN_MALFORMED', reason: 'multiple_authorization', challenge: 'invalid_request' },
      )
    })

    test('a broken Authorization header is refused with 400', async () => {
      await refused('bad-syntax', { authorization: 'Bearer a b c' }, { status: 400, code: 'ERR_AUTHN_MALFORMED', challenge: 'invalid_request' })
    })
  })
}

test('both signature paths gave identical answers to every case', () => {
  assert.ok(Object.keys(outcomes['node-crypto']).length >= 25)
  assert.deepEqual(outcomes.jose, outcomes['node-crypto'])
})

test('no token ever appears in the gateway output', async () => {
  assert.ok(tokensSent.size > 20)
  assert.equal(gateways.length, VERIFIERS.length)
  for (const gw of gateways) {
    const output = JSON.stringify(gw.lines) + gw.stderr()
    assert.ok(gw.events().length > 20, 'security events were written')
    for (const token of tokensSent) {
      assert.equal(output.includes(token), false, `token with digest ${digestOf(token)} found in output`)
      // Not even the signature part alone.
      const sig = token.slice(token.lastIndexOf('.') + 1)
      // A few cases carry deliberately tiny signatures; a substring that short says nothing.
      if (sig.length < 16) continue
      const at = output.indexOf(sig)
      assert.equal(at, -1, `signature ${sig.slice(0, 12)}… found in output near: ${output.slice(Math.max(0, at - 80), at + 20)}`)
    }
  }
})
