/**
 * Micro-benchmark of one uncached RS256 verification: the authn stage's node:crypto fast path
 * versus its jose path (same parse, header and claim rules; only the signature step differs), plus
 * jose.jwtVerify alone and a token-cache hit for scale.
 *
 *   npx tsc -p . && taskset -c 0 node dist/bench/verify-micro.js [seconds-per-case]
 *
 * Two figures per case: wall-clock rate, and CPU time per verification (user+system of the whole
 * process). The CPU figure is the fair one: WebCrypto (jose) runs the RSA operation on a libuv
 * pool thread, so on an idle multi-core machine its wall-clock rate borrows a second core, and on
 * a loaded one the wall clock mostly measures the neighbours. Pin to one core with taskset.
 *
 * Not a test: figures depend on the machine. Tokens are distinct, so nothing is cached by accident.
 */
import { hash } from 'node:crypto'
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose'
import { buildIdentity, checkClaims, checkHeaderPolicy, checkHeaderShape, type TokenPolicy } from '../src/pipeline/authn/claims.js'
import { importJwks } from '../src/pipeline/authn/jwk-import.js'
import { parseCompact } from '../src/pipeline/authn/jwt-parse.js'
import { verifyWithJose, verifyWithNodeCrypto, type SignatureVerifier } from '../src/pipeline/authn/jwt-verify.js'
import { TokenCache } from '../src/pipeline/authn/token-cache.js'

const seconds = Number(process.argv[2] ?? 2)
const ISS = 'https://idp.example'
const policy: TokenPolicy = {
  issuer: ISS,
  audiences: ['api://bench'],
  algorithms: new Set(['RS256']),
  clockToleranceSec: 30,
  maxTokenAgeSec: undefined,
  maxTokenLifetimeSec: 3600,
  requiredTyp: 'at+jwt',
}

const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
const { keys } = await importJwks({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }, policy.algorithms)
const key = keys[0]
const now = Math.floor(Date.now() / 1000)
const tokens: string[] = []
for (let i = 0; i < 512; i++) {
  tokens.push(
    await new SignJWT({ iss: ISS, aud: 'api://bench', sub: `user-${i}`, scope: 'read write', iat: now, exp: now + 600, jti: `j${i}` })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'at+jwt' })
      .sign(privateKey),
  )
}

async function measure(name: string, once: (token: string) => unknown): Promise<number> {
  // Warm-up, then a timed run of whole batches.
  for (let i = 0; i < 200; i++) await once(tokens[i % tokens.length])
  let n = 0
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const end = start + seconds * 1000
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) {
      const r = once(tokens[n++ % tokens.length])
      if (r instanceof Promise) await r
    }
  }
  const rate = n / ((performance.now() - start) / 1000)
  const cpu = process.cpuUsage(cpu0)
  const cpuUs = (cpu.user + cpu.system) / n
  console.log(`${name.padEnd(46)} ${Math.round(rate).toString().padStart(9)} /s wall  ${cpuUs.toFixed(1).padStart(7)} µs CPU each`)
  return cpuUs
}

/** What the stage does on a cache miss, minus issuer lookup and the cache write. */
function stagePath(verify: SignatureVerifier) {
  return (token: string) => {
    const jwt = parseCompact(token)
    checkHeaderShape(jwt.header)
    checkHeaderPolicy(jwt.header, policy)
    const finish = (ok: boolean) => {
      if (!ok) throw new Error('bad signature')
      checkClaims(jwt.payload, policy, Date.now())
    }
    const r = verify(jwt, key)
    return typeof r === 'boolean' ? finish(r) : r.then(finish)
  }
}

console.log(`RS256 (2048-bit), ${seconds}s per case, node ${process.version} (pin with taskset -c 0 for one core)\n`)
const fastCpu = await measure('authn node:crypto path (parse+rules+verify)', stagePath(verifyWithNodeCrypto))
const slowCpu = await measure('authn jose path (parse+rules+compactVerify)', stagePath(verifyWithJose))
await measure('jose.jwtVerify alone (reference)', (token) =>
  jwtVerify(token, key.cryptoKey, { issuer: ISS, audience: 'api://bench', algorithms: ['RS256'], typ: 'at+jwt' }),
)
const cache = new TokenCache(10_000)
for (const t of tokens) cache.set(hash('sha256', t, 'base64url'), buildIdentity(parseCompact(t).payload, 'main', 'd'), Date.now())
await measure('token cache hit (sha256 + lookup)', (token) => {
  if (!cache.get(hash('sha256', token, 'base64url'), Date.now())) throw new Error('miss')
})
console.log(`\nCPU per verification, jose path / node:crypto path: ${(slowCpu / fastCpu).toFixed(2)}x`)
