import { test } from 'node:test'
import assert from 'node:assert/strict'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { importJwks, type VerificationKey } from './jwk-import.js'
import { parseCompact } from './jwt-parse.js'
import { verifyWithJose, verifyWithNodeCrypto, verifyWithNodeCryptoBatched, type HmacKey, type SigningKey } from './jwt-verify.js'

const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const
const verifiers = { 'node-crypto': verifyWithNodeCrypto, 'node-crypto batched': verifyWithNodeCryptoBatched, jose: verifyWithJose }

async function keyFor(alg: string): Promise<{ key: VerificationKey; sign: (payload: Record<string, unknown>) => Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const { keys } = await importJwks({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k' }] }, new Set([alg]))
  assert.equal(keys.length, 1)
  return { key: keys[0], sign: (payload) => new SignJWT(payload).setProtectedHeader({ alg, kid: 'k' }).sign(privateKey) }
}

/** Flips one character in the middle of the signature, staying inside the base64url alphabet. */
function garble(token: string): string {
  const i = token.lastIndexOf('.') + 10
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
}

for (const alg of ALGS) {
  test(`${alg}: both signature paths accept a good signature and refuse a garbled one or another payload`, async () => {
    const { key, sign } = await keyFor(alg)
    const token = await sign({ sub: 'a' })
    const other = await sign({ sub: 'b' })
    const spliced = token.slice(0, token.indexOf('.') + 1) + other.split('.')[1] + token.slice(token.lastIndexOf('.'))
    for (const [name, verify] of Object.entries(verifiers)) {
      assert.equal(await verify(parseCompact(token), key), true, name)
      assert.equal(await verify(parseCompact(garble(token)), key), false, `${name} garbled`)
      assert.equal(await verify(parseCompact(spliced), key), false, `${name} spliced`)
    }
  })
}

test('a signature made by another key of the same type fails on both paths', async () => {
  const a = await keyFor('ES256')
  const b = await keyFor('ES256')
  const token = await b.sign({ sub: 'x' })
  for (const verify of Object.values(verifiers)) assert.equal(await verify(parseCompact(token), a.key), false)
})

test('HMAC tokens verify with the shared secret on both paths, and a wrong secret fails', async () => {
  const secret = Buffer.from('0123456789abcdef0123456789abcdef')
  const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(secret))
  const good: HmacKey = { alg: 'HS256', secret }
  const bad: HmacKey = { alg: 'HS256', secret: Buffer.from('fedcba9876543210fedcba9876543210') }
  for (const verify of Object.values(verifiers)) {
    assert.equal(await verify(parseCompact(token), good as SigningKey), true)
    assert.equal(await verify(parseCompact(token), bad), false)
  }
})

test('the node:crypto path answers synchronously; as the gateway runs it, public keys wait for the batch and HMAC does not', async () => {
  const { key, sign } = await keyFor('RS256')
  const jwt = parseCompact(await sign({}))
  assert.equal(verifyWithNodeCrypto(jwt, key), true)
  const batched = verifyWithNodeCryptoBatched(jwt, key)
  assert.ok(batched instanceof Promise)
  assert.equal(await batched, true)
  const secret = Buffer.from('0123456789abcdef0123456789abcdef')
  const hs = parseCompact(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(secret)))
  assert.equal(verifyWithNodeCryptoBatched(hs, { alg: 'HS256', secret } as SigningKey), true)
})

test('non-canonical base64url in the signature is refused when parsing', async () => {
  const { sign } = await keyFor('EdDSA')
  const token = await sign({})
  // An Ed25519 signature is 64 bytes: 86 chars whose last one carries 2 unused bits.
  const last = token.at(-1)!
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const sibling = alphabet[alphabet.indexOf(last) ^ 1]
  assert.throws(() => parseCompact(token.slice(0, -1) + sibling), (e: { reason?: string }) => e.reason === 'malformed')
})

test('a header or payload that is not valid UTF-8 is refused when parsing, valid non-ASCII text is not', () => {
  const seg = (bytes: number[] | string) => Buffer.from(typeof bytes === 'string' ? bytes : Uint8Array.from(bytes)).toString('base64url')
  const header = seg('{"alg":"RS256"}')
  const payload = seg('{"sub":"Zoë"}')
  assert.equal(parseCompact(`${header}.${payload}.AAAA`).payload.sub, 'Zoë')
  // A lone 0xFF, a UTF-16 surrogate (ED A0 80) and an overlong "/" (C0 AF) inside a string value.
  for (const bad of [[0xff], [0xed, 0xa0, 0x80], [0xc0, 0xaf]]) {
    const json = (prefix: string) => seg([...Buffer.from(prefix + '"x":"'), ...bad, ...Buffer.from('"}')])
    assert.throws(() => parseCompact(`${json('{"alg":"RS256",')}.${payload}.AAAA`), (e: { reason?: string }) => e.reason === 'malformed', `header ${bad}`)
    assert.throws(() => parseCompact(`${header}.${json('{"sub":"a",')}.AAAA`), (e: { reason?: string }) => e.reason === 'malformed', `payload ${bad}`)
  }
})

test('a header or payload segment of 4n+1 characters is refused when parsing, though node would decode it', () => {
  const seg = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const header = seg({ alg: 'RS256' })
  const payload = seg({ sub: 'abcdefgh' })
  assert.equal(payload.length % 4, 0)
  assert.deepEqual(Buffer.from(payload + 'A', 'base64url'), Buffer.from(payload, 'base64url'), 'Buffer drops the dangling character')
  assert.equal(parseCompact(`${header}.${payload}.AAAA`).payload.sub, 'abcdefgh')
  assert.throws(() => parseCompact(`${header}.${payload}A.AAAA`), (e: { reason?: string }) => e.reason === 'malformed')
  const h4 = seg({ alg: 'RS256', x: 'yy' })
  assert.equal(h4.length % 4, 0)
  assert.throws(() => parseCompact(`${h4}A.${payload}.AAAA`), (e: { reason?: string }) => e.reason === 'malformed')
})
