import { test } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import type { IssuerConfig } from '../../config/schema.js'
import type { Deps } from '../stage.js'
import { compileIssuer, issuerFromDiscoveryUrl, IssuerConfigError } from './issuer.js'

const warnings: unknown[] = []
const deps: Deps = {
  now: () => 0,
  events: { emit: () => {}, flush: async () => {} },
  logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) }),
}

const base: IssuerConfig = {
  id: 'main',
  issuer: 'https://idp.example',
  jwksUri: 'https://idp.example/jwks',
  audiences: ['api'],
  algorithms: ['RS256'],
  clockSkewSec: 30,
  maxTokenLifetimeSec: 3600,
  jwksCacheMaxAgeSec: 600,
  jwksCacheMinAgeSec: 60,
  unknownKidRefreshIntervalSec: 30,
  fetchTimeoutMs: 5000,
  verifier: 'node-crypto',
}

test('the issuer of a discovery URL is derived as OIDC Discovery §4 and RFC 8414 §3.1 define it', () => {
  assert.equal(issuerFromDiscoveryUrl('https://idp.example/.well-known/openid-configuration'), 'https://idp.example')
  assert.equal(issuerFromDiscoveryUrl('https://idp.example/tenant/.well-known/openid-configuration'), 'https://idp.example/tenant')
  assert.equal(issuerFromDiscoveryUrl('https://idp.example/.well-known/oauth-authorization-server/tenant'), 'https://idp.example/tenant')
  assert.equal(issuerFromDiscoveryUrl('https://idp.example/metadata.json'), undefined)
})

test('"none" is dropped from the allowlist in any casing, even when configured', () => {
  const issuer = compileIssuer({ ...base, algorithms: ['none', 'RS256'] }, deps)
  assert.deepEqual([...issuer.policy.algorithms], ['RS256'])
})

test('an HMAC algorithm without a sharedSecret is dropped, so it can never meet an RSA key', () => {
  const issuer = compileIssuer({ ...base, algorithms: ['RS256', 'HS256'] }, deps)
  assert.deepEqual([...issuer.policy.algorithms], ['RS256'])
  assert.equal(issuer.hmacKeys.size, 0)
})

test('a sharedSecret shorter than the hash output is a config error (RFC 7518 §3.2)', () => {
  assert.throws(() => compileIssuer({ ...base, algorithms: ['HS256'], sharedSecret: 'short' }, deps), IssuerConfigError)
  const ok = compileIssuer({ ...base, algorithms: ['HS256'], sharedSecret: 'x'.repeat(32), jwksUri: undefined }, deps)
  assert.equal(ok.store, undefined, 'an HMAC-only issuer needs no key store')
})

test('an issuer with nothing usable, or without an issuer or key source, is a config error', () => {
  assert.throws(() => compileIssuer({ ...base, algorithms: ['none'] }, deps), IssuerConfigError)
  assert.throws(() => compileIssuer({ ...base, issuer: undefined }, deps), IssuerConfigError)
  assert.throws(() => compileIssuer({ ...base, jwksUri: undefined }, deps), IssuerConfigError)
  assert.throws(() => compileIssuer({ ...base, issuer: undefined, discoveryUrl: 'https://x.example/meta' }, deps), IssuerConfigError)
  assert.throws(() => compileIssuer({ ...base, jwksCacheMinAgeSec: 700 }, deps), IssuerConfigError)
})

test('requiredTyp is normalized once at load', () => {
  assert.equal(compileIssuer({ ...base, requiredTyp: 'Application/AT+JWT' }, deps).policy.requiredTyp, 'at+jwt')
})
