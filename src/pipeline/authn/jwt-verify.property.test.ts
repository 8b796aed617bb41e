import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { compactVerify, exportJWK, generateKeyPair, SignJWT } from 'jose'
import { isGatewayError } from '../../errors/gateway-error.js'
import { importJwks } from './jwk-import.js'
import { parseCompact } from './jwt-parse.js'
import { verifyWithNodeCrypto, type HmacKey, type SigningKey } from './jwt-verify.js'

// The gateway's fast path (its own parser, then node:crypto.verify) against jose's compactVerify
// on the raw token, over generated corruptions of a valid token: characters replaced, inserted or
// removed (base64url and not: "=", "+", "/", space, "."), segments swapped or dropped. The fast
// path must never accept what jose refuses. The reverse is allowed only for spellings the
// gateway refuses on purpose: a segment that is not the canonical base64url of its bytes.

const ALPHABET = 'AQgwBb9_-=+/ .~'

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), ch: fc.constantFrom(...ALPHABET) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), ch: fc.constantFrom(...ALPHABET) }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(2), b: fc.nat(2) }),
  fc.record({ kind: fc.constant('drop' as const), a: fc.nat(2) }),
)
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never

function apply(token: string, m: Mutation): string {
  if (m.kind === 'swap' || m.kind === 'drop') {
    const parts = token.split('.')
    if (m.kind === 'drop') return parts.filter((_, i) => i !== m.a).join('.')
    ;[parts[m.a], parts[m.b]] = [parts[m.b], parts[m.a]]
    return parts.join('.')
  }
  const at = m.at % (token.length + 1)
  if (m.kind === 'insert') return token.slice(0, at) + m.ch + token.slice(at)
  if (m.kind === 'remove') return token.slice(0, at) + token.slice(at + 1)
  return token.slice(0, at) + m.ch + token.slice(at + 1)
}

async function gatewayAccepts(token: string, key: SigningKey): Promise<boolean> {
  try {
    return verifyWithNodeCrypto(parseCompact(token), key)
  } catch (err) {
    assert.ok(isGatewayError(err), String(err))
    return false
  }
}

async function joseAccepts(token: string, key: CryptoKey | Uint8Array, alg: string): Promise<boolean> {
  try {
    await compactVerify(token, key, { algorithms: [alg] })
    return true
  } catch {
    return false
  }
}

/** Every segment is the canonical base64url text of its own bytes. */
const canonical = (token: string) => token.split('.').every((s) => Buffer.from(s, 'base64url').toString('base64url') === s)

for (const alg of ['RS256', 'ES256', 'EdDSA', 'HS256'] as const) {
  test(`${alg}: the node:crypto path never accepts a corrupted token that jose refuses`, async () => {
    let gatewayKey: SigningKey
    let joseKey: CryptoKey | Uint8Array
    let token: string
    if (alg === 'HS256') {
      const secret = Buffer.from('0123456789abcdef0123456789abcdef')
      gatewayKey = { alg, secret } satisfies HmacKey
      joseKey = new Uint8Array(secret)
      token = await new SignJWT({ sub: 'a', scope: 'read' }).setProtectedHeader({ alg }).sign(joseKey)
    } else {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
      gatewayKey = (await importJwks({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k' }] }, new Set([alg]))).keys[0]
      joseKey = publicKey
      token = await new SignJWT({ sub: 'a', scope: 'read' }).setProtectedHeader({ alg, kid: 'k' }).sign(privateKey)
    }
    assert.equal(await gatewayAccepts(token, gatewayKey), true)
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const bad = mutations.reduce(apply, token)
        const ours = await gatewayAccepts(bad, gatewayKey)
        const theirs = await joseAccepts(bad, joseKey, alg)
        if (ours) assert.ok(theirs, `the gateway accepted what jose refuses: ${bad}`)
        if (theirs && !ours) assert.ok(!canonical(bad) || /[^A-Za-z0-9_.-]/.test(bad), `jose accepted a canonical token the gateway refused: ${bad}`)
      }),
      { numRuns: 1500 },
    )
  })
}
