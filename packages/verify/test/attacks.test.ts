import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createVerifier, type Verifier } from '@portcullis/verify'
import { buildAcceptedCases, buildAttackCases, type AttackContext } from './fixtures/attack-tokens.js'
import { startJwksServer, startTrap, type JwksServer, type Trap } from './helpers/jwks-server.js'
import { refusal } from './helpers/refusal.js'

/**
 * The shared attack fixtures against @portcullis/verify, with keys served over HTTP, once per way
 * of finding the keys (jwksUri, discoveryUrl). The gateway runs the very same cases.
 */

const AUDIENCE = 'api://test'
const TYP = 'at+jwt'

for (const source of ['jwksUri', 'discoveryUrl'] as const) {
  for (const alg of ['RS256', 'EdDSA'] as const) {
    describe(`attack tokens against a verifier using ${source}, ${alg} keys`, () => {
      let js: JwksServer
      let trap: Trap
      let verifier: Verifier
      let ctx: AttackContext

      before(async () => {
        js = await startJwksServer({ alg })
        trap = await startTrap()
        verifier = createVerifier({
          issuer: js.issuer,
          audience: AUDIENCE,
          [source]: source === 'jwksUri' ? js.jwksUri : js.discoveryUrl,
          requiredTyp: TYP,
          // So that an unknown kid is refetched at once (the gateway test sets its interval to 0).
          jwksCooldownSec: 0,
          // Every case verified afresh: no answer comes from the verified-token cache.
          tokenCacheSize: 0,
        })
        ctx = js.context({ audience: AUDIENCE, typ: TYP, trapUrl: trap.url, claims: { scope: 'read' } })
      })

      after(async () => {
        await js?.close()
        await trap?.close()
      })

      test('the control tokens are accepted', async () => {
        for (const c of await buildAcceptedCases(ctx)) {
          const identity = await verifier.verify(`Bearer ${c.token}`)
          assert.equal(identity.subject, 'user-1', c.name)
          assert.equal(identity.issuer, js.issuer, c.name)
        }
      })

      test('every attack token is refused with the expected code, reason and 401 invalid_token challenge', async () => {
        const cases = await buildAttackCases(ctx)
        assert.ok(cases.length >= 25, `${cases.length} cases`)
        for (const c of cases) {
          const err = await refusal(verifier.verify(`Bearer ${c.token}`))
          assert.equal(err.code, c.expect.code, `${c.name}: code`)
          assert.equal(err.reason, c.expect.reason, `${c.name}: reason`)
          assert.equal(err.status, c.expect.status, `${c.name}: status`)
          assert.equal(err.wwwAuthenticate(), `Bearer realm="portcullis", error="${c.expect.error}"`, `${c.name}: challenge`)
          // The problem body names the code, never the failed check nor the token.
          const problem = err.toProblem()
          assert.equal(problem.code, c.expect.code, `${c.name}: problem code`)
          assert.equal('reason' in problem, false, `${c.name}: no reason in the body`)
          assert.equal(problem.detail, undefined, `${c.name}: no detail in the body`)
          assert.equal(JSON.stringify(problem).includes(c.token.slice(0, 20)), false, `${c.name}: no token in the body`)
        }
        // In this test, after the jku and x5u tokens were sent: none made the verifier fetch the URL.
        assert.ok(cases.some((c) => c.name.includes('jku')), 'the jku case ran')
        assert.deepEqual(trap.hits, [], 'no attack token made the verifier contact the URL a jku or x5u header named')
      })

      test('an unknown kid is refused, and a key rotated into the JWKS is accepted after the refresh', async () => {
        const stray = await js.addKey(alg, { publish: false })
        const before = js.jwksFetches()
        const err = await refusal(verifier.verify(`Bearer ${js.sign(ctx, {}, { key: stray })}`))
        assert.equal(err.reason, 'unknown_kid')
        assert.equal(js.jwksFetches(), before + 1, 'the unknown kid made exactly one refresh')
        const rotated = await js.addKey(alg)
        const identity = await verifier.verify(js.sign(ctx, { sub: 'rotated' }, { key: rotated }))
        assert.equal(identity.subject, 'rotated')
        assert.equal(js.jwksFetches(), before + 2)
      })
    })
  }
}

test('with the default cooldown, a burst of forged kids right after a fetch causes no refetch', async (t) => {
  const js = await startJwksServer({ alg: 'EdDSA' })
  t.after(() => js.close())
  const verifier = createVerifier({ issuer: js.issuer, audience: AUDIENCE, jwksUri: js.jwksUri })
  await verifier.verify(js.sign({ audience: AUDIENCE, typ: TYP }))
  assert.equal(js.jwksFetches(), 1)
  for (let i = 0; i < 10; i++) {
    const stray = await js.addKey('EdDSA', { publish: false, kid: `forged-${i}` })
    const err = await refusal(verifier.verify(`Bearer ${js.sign({ audience: AUDIENCE, typ: TYP }, {}, { key: stray })}`))
    assert.equal(err.reason, 'unknown_kid')
  }
  // jose's cooldown (30 s by default) starts at the last fetch, so none of the ten refetched.
  assert.equal(js.jwksFetches(), 1)
})
