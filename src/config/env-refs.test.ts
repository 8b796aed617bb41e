import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveRefs, showValue } from './env-refs.js'

const baseDir = tmpdir()

test('an ${env:NAME} reference is replaced anywhere inside a string, and nested values are walked', () => {
  const r = resolveRefs({ a: { b: ['x-${env:ONE}-${env:TWO}'] }, n: 3, t: true }, { env: { ONE: '1', TWO: '2' }, baseDir })
  assert.deepEqual(r.value, { a: { b: ['x-1-2'] }, n: 3, t: true })
  assert.deepEqual(r.errors, [])
  assert.ok(r.resolvedPaths.has('/a/b/0'))
  assert.ok(!r.wholeRefPaths.has('/a/b/0'), 'a reference mixed with inline text is not a whole reference')
})

test('a value that is exactly one reference is recorded as a whole reference', () => {
  const r = resolveRefs({ secret: '${env:S}' }, { env: { S: 'value' }, baseDir })
  assert.ok(r.wholeRefPaths.has('/secret'))
})

test('a missing or empty variable is an error naming the variable and the path, and the input is not changed', () => {
  const input = { issuers: [{ sharedSecret: '${env:NOPE}' }], other: '${env:EMPTY}' }
  const r = resolveRefs(input, { env: { EMPTY: '' }, baseDir })
  assert.deepEqual(
    r.errors.map((e) => e.path),
    ['/issuers/0/sharedSecret', '/other'],
  )
  assert.match(r.errors[0].message, /NOPE is not set/)
  assert.match(r.errors[1].message, /EMPTY is empty/)
  assert.equal(input.issuers[0].sharedSecret, '${env:NOPE}')
})

test('a ${file:PATH} reference reads the file relative to the config folder, trimmed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-refs-'))
  writeFileSync(join(dir, 'key.txt'), '  the-key\n')
  const r = resolveRefs({ k: '${file:key.txt}', missing: '${file:nope.txt}' }, { env: {}, baseDir: dir })
  assert.equal((r.value as Record<string, string>).k, 'the-key')
  assert.equal(r.errors.length, 1)
  assert.equal(r.errors[0].path, '/missing')
  assert.match(r.errors[0].message, /ENOENT/)
})

test('"$${" escapes a literal "${" and an unknown reference kind is an error rather than passed through', () => {
  const r = resolveRefs({ lit: 'cost: $${env:X}', bad: '${HOME}' }, { env: { X: 'no' }, baseDir })
  assert.equal((r.value as Record<string, string>).lit, 'cost: ${env:X}')
  assert.deepEqual(
    r.errors.map((e) => e.path),
    ['/bad'],
  )
  assert.match(r.errors[0].message, /unsupported reference/)
})

test('keys with "/" and "~" are escaped in paths as RFC 6901 says', () => {
  const r = resolveRefs({ 'a/b': { '~c': '${env:NOPE}' } }, { env: {}, baseDir })
  assert.equal(r.errors[0].path, '/a~1b/~0c')
})

test('showValue never shows a value that came from a reference', () => {
  const resolved = new Set(['/x'])
  assert.doesNotMatch(showValue('s3cret', '/x', resolved), /s3cret/)
  assert.equal(showValue('plain', '/y', resolved), '"plain"')
})

test('a "__proto__" key is refused at its key and its value is neither resolved nor made a prototype', () => {
  const input = JSON.parse('{"route": {"path": "/a", "__proto__": {"auth": "public", "upstream": "${env:SECRET}"}}}') as unknown
  const r = resolveRefs(input, { env: { SECRET: 'not-to-be-read' }, baseDir })
  assert.deepEqual(r.errors, [{ path: '/route/__proto__', message: 'a field named "__proto__" is not allowed', atKey: true }])
  const route = (r.value as { route: Record<string, unknown> }).route
  assert.equal(Object.getPrototypeOf(route), Object.prototype)
  assert.equal(route.auth, undefined)
  assert.deepEqual(Object.keys(route), ['path'])
  assert.equal(r.resolvedPaths.size, 0)
})
