import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { exportJWK, generateKeyPair } from 'jose'
import { createVerifier } from '@portcullis/verify'
import { signCompact } from './fixtures/attack-tokens.js'
import { nowSec, refusal } from './helpers/refusal.js'

const ISSUER = 'https://idp.example'
const DISCOVERY = `${ISSUER}/.well-known/openid-configuration`

test('a discovery document fetched over https cannot send the keys over plain http', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] }
  let jwksUri = 'http://keys.idp.example/jwks'
  const requested: string[] = []
  // A unit test has no TLS server: fetch is stubbed, for these made-up hosts only.
  const realFetch = globalThis.fetch
  globalThis.fetch = (async (input: string | URL | Request) => {
    const url = input instanceof Request ? input.url : String(input)
    requested.push(url)
    const body = url === DISCOVERY ? { issuer: ISSUER, jwks_uri: jwksUri } : jwks
    return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } })
  }) as typeof fetch
  t.after(() => {
    globalThis.fetch = realFetch
  })
  const token = signCompact({ alg: 'RS256', kid: 'k1' }, { iss: ISSUER, aud: 'api://x', sub: 's', iat: nowSec(), exp: nowSec() + 60 }, 'RS256', privateKey)

  const downgraded = createVerifier({ issuer: ISSUER, audience: 'api://x', discoveryUrl: DISCOVERY })
  const err = await refusal(downgraded.verify(token))
  assert.equal(err.code, 'ERR_AUTHN_IDP_UNAVAILABLE')
  assert.equal(err.reason, 'discovery_invalid')
  assert.deepEqual(requested, [DISCOVERY], 'the plain-http jwks_uri is never fetched')

  // Another host is fine, over https (OIDC Discovery lets jwks_uri live anywhere).
  jwksUri = 'https://keys.idp.example/jwks'
  const verifier = createVerifier({ issuer: ISSUER, audience: 'api://x', discoveryUrl: DISCOVERY })
  assert.equal((await verifier.verify(token)).subject, 's')
  assert.equal(requested.at(-1), jwksUri)
})

test('a kid-less token is verified by its key even when a key jose will not use comes first in the JWKS', async () => {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  // jose refuses an RSA key under 2048 bits (RFC 7518 §3.3); the gateway skips it at import.
  const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
  const good = await exportJWK(publicKey)
  const claims = { iss: ISSUER, aud: 'api://x', sub: 's', iat: nowSec(), exp: nowSec() + 60 }
  const token = signCompact({ alg: 'RS256' }, claims, 'RS256', privateKey)
  const verifier = createVerifier({ issuer: ISSUER, audience: 'api://x', jwks: { keys: [{ ...short, alg: 'RS256' }, { ...good, alg: 'RS256' }] } })
  assert.equal((await verifier.verify(token)).subject, 's')
  // With no key but the short one, the token is still refused for want of a usable key.
  const shortOnly = createVerifier({ issuer: ISSUER, audience: 'api://x', jwks: { keys: [{ ...short, alg: 'RS256' }, { ...short, alg: 'RS256', e: 'AQAB' }] } })
  assert.equal((await refusal(shortOnly.verify(token))).reason, 'no_matching_key')
  // And a forgery among usable keys is a bad signature, as before.
  const other = await exportJWK((await generateKeyPair('RS256', { extractable: true })).publicKey)
  const forged = createVerifier({ issuer: ISSUER, audience: 'api://x', jwks: { keys: [{ ...short, alg: 'RS256' }, { ...other, alg: 'RS256' }] } })
  assert.equal((await refusal(forged.verify(token))).reason, 'bad_signature')
})
