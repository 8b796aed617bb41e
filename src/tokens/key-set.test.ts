import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createKeySchedule, scheduleProblem } from './key-schedule.js'
import { KeySetError, jwkThumbprint, newKeySet, parseKeySet, rotateKeySet, serializeKeySet, type KeySetDocument } from './key-set.js'

const T0 = Date.parse('2030-01-01T00:00:00Z')

test('a new key set has one current EdDSA or ES256 key whose kid is its RFC 7638 thumbprint; it parses back with a public JWK only', () => {
  for (const alg of ['EdDSA', 'ES256'] as const) {
    const set = newKeySet(alg, T0)
    assert.equal(set.keys.length, 1)
    const [k] = set.keys
    assert.equal(k.state, 'current')
    assert.equal(k.kid, jwkThumbprint(k.privateJwk))
    const { keys } = parseKeySet(serializeKeySet(set))
    assert.equal(keys[0].alg, alg)
    assert.equal(keys[0].activateAt, 0)
    assert.equal(keys[0].retireAt, Infinity)
    assert.equal('d' in keys[0].publicJwk, false)
    assert.deepEqual(Object.keys(keys[0].publicJwk).sort(), alg === 'EdDSA' ? ['alg', 'crv', 'kid', 'kty', 'use', 'x'] : ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'])
  }
})

test('a rotation adds a current key published ahead and keeps the replaced key until the overlap after activation', () => {
  const set = newKeySet('EdDSA', T0)
  const { set: rotated, added, retiring } = rotateKeySet(set, { overlapSec: 300, publishAheadSec: 60, nowMs: T0 + 1000 })
  assert.equal(retiring.kid, set.keys[0].kid)
  assert.equal(retiring.state, 'previous')
  assert.equal(Date.parse(added.activateAt!), T0 + 61_000)
  assert.equal(Date.parse(retiring.retireAt!), T0 + 61_000 + 300_000)
  assert.deepEqual(
    rotated.keys.map((k) => k.state),
    ['current', 'previous'],
  )
  // The input is not changed.
  assert.equal(set.keys[0].state, 'current')
  // Previous keys already retired are dropped at the next rotation; those still published stay.
  const again = rotateKeySet(rotated, { overlapSec: 10, publishAheadSec: 0, nowMs: T0 + 2000 })
  assert.equal(again.set.keys.length, 3)
  const late = rotateKeySet(again.set, { overlapSec: 10, publishAheadSec: 0, nowMs: T0 + 10_000_000 })
  assert.deepEqual(
    late.set.keys.map((k) => k.kid),
    [late.added.kid, again.added.kid],
  )
})

test('the schedule: the previous key signs until the published-ahead key activates; keys leave the JWKS at retireAt', () => {
  const first = newKeySet('EdDSA', T0)
  const { set } = rotateKeySet(first, { overlapSec: 100, publishAheadSec: 60, nowMs: T0 })
  const { keys } = parseKeySet(serializeKeySet(set))
  const s = createKeySchedule(keys)
  const [newKid, oldKid] = [set.keys[0].kid, first.keys[0].kid]
  assert.equal(s.signerAt(T0 + 59_999)?.kid, oldKid)
  assert.equal(s.nextSignerChange(T0), T0 + 60_000)
  assert.equal(s.signerAt(T0 + 60_000)?.kid, newKid)
  assert.deepEqual(s.publishedAt(T0).map((k) => k.kid).sort(), [newKid, oldKid].sort())
  assert.equal(s.nextPublicationChange(T0), T0 + 160_000)
  assert.deepEqual(s.publishedAt(T0 + 160_000).map((k) => k.kid), [newKid])
  assert.equal(s.nextPublicationChange(T0 + 160_000), Infinity)
  assert.equal(scheduleProblem(s, 'EdDSA', T0), undefined)
  assert.match(scheduleProblem(s, 'ES256', T0) ?? '', /is EdDSA, but internalTokens.algorithm is ES256/)
})

test('an emergency rotation (no publish-ahead, no overlap) retires every earlier key at once, one still signing included', () => {
  const first = newKeySet('EdDSA', T0)
  const normal = rotateKeySet(first, { overlapSec: 300, publishAheadSec: 60, nowMs: T0 })
  // Ten seconds later the first key still signs (the new one activates at T0 + 60 s); it leaks.
  const s1 = createKeySchedule(parseKeySet(serializeKeySet(normal.set)).keys)
  assert.equal(s1.signerAt(T0 + 10_000)?.kid, first.keys[0].kid)
  const emergency = rotateKeySet(normal.set, { overlapSec: 0, publishAheadSec: 0, nowMs: T0 + 10_000 })
  const s2 = createKeySchedule(parseKeySet(serializeKeySet(emergency.set)).keys)
  assert.deepEqual(
    s2.publishedAt(T0 + 10_000).map((k) => k.kid),
    [emergency.added.kid],
  )
  assert.equal(s2.signerAt(T0 + 10_000)?.kid, emergency.added.kid)
  // A normal rotation keeps an older key only as long as the new overlap, never longer than planned.
  const later = rotateKeySet(normal.set, { overlapSec: 30, publishAheadSec: 0, nowMs: T0 + 10_000 })
  const olderRetire = Date.parse(later.set.keys.find((k) => k.kid === first.keys[0].kid)!.retireAt!)
  assert.equal(olderRetire, T0 + 40_000)
})

test('a current key that activates later with no previous key to sign until then is a problem', () => {
  const { set } = rotateKeySet(newKeySet('EdDSA', T0), { overlapSec: 0, publishAheadSec: 60, nowMs: T0 })
  const onlyCurrent: KeySetDocument = { ...set, keys: [set.keys[0]] }
  const s = createKeySchedule(parseKeySet(serializeKeySet(onlyCurrent)).keys)
  assert.equal(s.signerAt(T0), undefined)
  assert.match(scheduleProblem(s, 'EdDSA', T0) ?? '', /only signs from/)
})

test('broken key sets are refused with a message that names the key, never its material', () => {
  const good = newKeySet('EdDSA', T0)
  const d = good.keys[0].privateJwk.d!
  const cases: Array<[string, unknown]> = [
    ['not json', 'nope'],
    ['other kind', { kind: 'x', version: 1, keys: [] }],
    ['no keys', { ...good, keys: [] }],
    ['two current', { ...good, keys: [good.keys[0], { ...newKeySet('EdDSA', T0).keys[0] }] }],
    ['duplicate kid', { ...good, keys: [good.keys[0], { ...good.keys[0], state: 'previous', retireAt: new Date(T0).toISOString() }] }],
    ['alg mismatch', { ...good, keys: [{ ...good.keys[0], alg: 'ES256' }] }],
    ['public only', { ...good, keys: [{ ...good.keys[0], privateJwk: { ...good.keys[0].privateJwk, d: undefined } }] }],
    ['bad d', { ...good, keys: [{ ...good.keys[0], privateJwk: { ...good.keys[0].privateJwk, d: 'AAAA' } }] }],
    ['previous without retireAt', { ...good, keys: [good.keys[0], { ...newKeySet('EdDSA', T0).keys[0], state: 'previous' }] }],
    ['bad date', { ...good, keys: [{ ...good.keys[0], createdAt: 'yesterday' }] }],
    ['none alg', { ...good, keys: [{ ...good.keys[0], alg: 'none' }] }],
  ]
  for (const [name, doc] of cases) {
    assert.throws(
      () => parseKeySet(typeof doc === 'string' ? doc : JSON.stringify(doc)),
      (err: unknown) => err instanceof KeySetError && !err.message.includes(d),
      name,
    )
  }
})
