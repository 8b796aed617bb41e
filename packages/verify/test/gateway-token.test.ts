import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { GATEWAY_TOKEN_TYP, gatewayTokenVerifier, type Verifier } from '@portcullis/verify'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { nowSec, refusal } from './helpers/refusal.js'

/**
 * The preset for the gateway's internal tokens, against a JWKS standing in for the gateway's.
 * These are the ways a request that bypassed the gateway could try to get in.
 */

describe('gatewayTokenVerifier', () => {
  let gw: JwksServer
  let idp: JwksServer
  let orders: Verifier
  const internal = { audience: 'orders', typ: GATEWAY_TOKEN_TYP }
  const mint = (claims: Record<string, unknown> = {}, options?: Parameters<JwksServer['sign']>[2]) =>
    gw.sign(internal, { iat: nowSec(), exp: nowSec() + 30, scope: 'orders:read', ...claims }, options)

  before(async () => {
    gw = await startJwksServer({ alg: 'EdDSA' })
    idp = await startJwksServer({ alg: 'RS256' })
    orders = gatewayTokenVerifier({ gatewayIssuer: gw.issuer, audience: 'orders', jwksUri: gw.jwksUri })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
  })

  test('accepts an internal token minted for this service, with the caller it acts for in act', async () => {
    const identity = await orders.verify(`Bearer ${mint({ sub: 'alice', act: { sub: 'portcullis-gateway' }, request_id: 'r-1' })}`)
    assert.equal(identity.subject, 'alice')
    assert.equal(identity.act?.sub, 'portcullis-gateway')
    assert.equal(identity.claims.request_id, 'r-1')
    assert.ok(identity.scopes.has('orders:read'))
  })

  test('accepts ES256 internal tokens too', async () => {
    const es = await gw.addKey('ES256')
    // A fresh verifier: the first one fetched the JWKS before this key existed and is in its cooldown.
    const verifier = gatewayTokenVerifier({ gatewayIssuer: gw.issuer, audience: 'orders', jwksUri: gw.jwksUri })
    assert.equal((await verifier.verify(mint({ sub: 'es' }, { key: es }))).subject, 'es')
  })

  test("refuses the caller's own IdP access token sent straight to the service", async () => {
    const external = idp.sign({ audience: 'orders', typ: 'at+jwt' })
    assert.equal((await refusal(orders.verify(external))).reason, 'unknown_issuer')
  })

  test('refuses a token of the gateway issuer that is not typed as an internal token', async () => {
    assert.equal((await refusal(orders.verify(gw.sign({ audience: 'orders', typ: 'at+jwt' }, { exp: nowSec() + 30 })))).reason, 'typ')
  })

  test('refuses an internal token minted for another service', async () => {
    const forUsers = gw.sign({ audience: 'users', typ: GATEWAY_TOKEN_TYP }, { exp: nowSec() + 30 })
    assert.equal((await refusal(orders.verify(forUsers))).reason, 'wrong_audience')
  })

  test('refuses an expired internal token, past the 5 s tolerance', async () => {
    const err = await refusal(orders.verify(mint({ iat: nowSec() - 60, exp: nowSec() - 6 })))
    assert.equal(err.code, 'ERR_AUTHN_EXPIRED')
  })

  test('refuses an internal token living longer than 60 s', async () => {
    assert.equal((await refusal(orders.verify(mint({ exp: nowSec() + 120 })))).reason, 'lifetime')
  })

  test('refuses RS256 even from a key in the gateway JWKS', async () => {
    const rs = await gw.addKey('RS256')
    try {
      assert.equal((await refusal(orders.verify(mint({}, { key: rs })))).reason, 'alg_not_allowed')
    } finally {
      gw.removeKey(rs.kid)
    }
  })

  test('key rotation: tokens of the old key verify during the overlap, and not once it left the JWKS', async () => {
    const verifier = gatewayTokenVerifier({ gatewayIssuer: gw.issuer, audience: 'orders', jwksUri: gw.jwksUri, jwksCacheMaxAgeSec: 0 })
    const old = gw.keys[0]
    const next = await gw.addKey('EdDSA')
    // Overlap: both keys published.
    assert.equal((await verifier.verify(mint({ sub: 'old' }, { key: old }))).subject, 'old')
    assert.equal((await verifier.verify(mint({ sub: 'new' }, { key: next }))).subject, 'new')
    // End of the overlap: the old key is withdrawn.
    gw.removeKey(old.kid)
    const late = mint({ sub: 'old-late' }, { key: old })
    assert.equal((await refusal(verifier.verify(late))).reason, 'unknown_kid')
    assert.equal((await verifier.verify(mint({ sub: 'new-2' }, { key: next }))).subject, 'new-2')
  })

  test('options can still be overridden, and an undefined option keeps the preset', async () => {
    const lenient = gatewayTokenVerifier({ gatewayIssuer: gw.issuer, audience: 'orders', jwksUri: gw.jwksUri, maxTokenLifetimeSec: 300, algorithms: undefined })
    assert.equal((await lenient.verify(mint({ exp: nowSec() + 120 }))).subject, 'user-1')
    const rs = await gw.addKey('RS256')
    try {
      assert.equal((await refusal(lenient.verify(mint({}, { key: rs })))).reason, 'alg_not_allowed')
    } finally {
      gw.removeKey(rs.kid)
    }
  })
})
