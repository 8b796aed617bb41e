import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatIssues, loadConfigText, type ConfigIssue, type LoadResult } from './load.js'
import { MAX_DEPTH, MAX_EXPANDED_VALUES } from './yaml-aliases.js'

const FILE = 'portcullis.yaml'
const HEAD = `version: 1
listeners:
  - port: 0
upstreams:
  - id: orders
    url: http://127.0.0.1:3000
`

function load(text: string): LoadResult {
  // Never throws: every problem comes back as an issue.
  return loadConfigText(text, FILE, {})
}

function only(result: LoadResult): ConfigIssue {
  assert.equal(result.ok, false, 'expected the config to be refused')
  const errors = result.ok ? [] : result.errors
  assert.equal(errors.length, 1, formatIssues(errors))
  return errors[0]
}

test('an alias without an anchor is an error at the alias, not an exception', () => {
  const e = only(load(`${HEAD}routes:\n  - path: /orders\n    upstream: *u\n    auth: public\n`))
  assert.deepEqual([e.line, e.column, e.path], [9, 15, '/routes/0/upstream'])
  assert.equal(e.message, 'YAML alias "*u" has no anchor "&u" before it (an anchor must be defined before its aliases)')
})

test('an alias used before its anchor is unresolved too, and every such alias is reported', () => {
  const text = `${HEAD}routes:\n  - path: /a\n    upstream: *up\n    auth: *pub\n  - path: /b\n    upstream: &up orders\n    auth: &pub public\n`
  const r = load(text)
  assert.equal(r.ok, false)
  assert.deepEqual(
    (r.ok ? [] : r.errors).map((e) => [e.line, e.path]),
    [
      [9, '/routes/0/upstream'],
      [10, '/routes/0/auth'],
    ],
  )
})

test('an alias inside the node it refers to is an error, not endless recursion', () => {
  const e = only(load(`version: 1\nlisteners: &l\n  - port: 0\n    extra: *l\n`))
  assert.deepEqual([e.line, e.column, e.path], [4, 12, '/listeners/0/extra'])
  assert.match(e.message, /^YAML alias "\*l" is inside the node anchored as "&l"/)
})

test('one anchor reused by hundreds of routes loads, each route with the anchored value', () => {
  let text = `${HEAD}routes:\n  - path: /r0\n    upstream: orders\n    auth: &pub public\n    methods: &m [GET, POST]\n`
  for (let i = 1; i < 300; i++) text += `  - path: /r${i}\n    upstream: orders\n    auth: *pub\n    methods: *m\n`
  const r = load(text)
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  assert.equal(r.config.routes.length, 300)
  assert.ok(r.config.routes.every((route) => route.auth === 'public' && route.methods.join() === 'GET,POST'))
})

test('an issue inside an aliased value is located at the alias', () => {
  let text = `${HEAD}routes:\n  - path: /r0\n    upstream: orders\n    auth: &pub public\n`
  for (let i = 1; i < 150; i++) text += `  - path: /r${i}\n    upstream: orders\n    auth: *pub\n`
  text += `  - path: /bad\n    upstream: &ghost nowhere\n    auth: *pub\n  - path: /bad2\n    upstream: *ghost\n    auth: *pub\n`
  const r = load(text)
  assert.equal(r.ok, false)
  const errors = r.ok ? [] : r.errors
  assert.deepEqual(
    errors.map((e) => [e.line, e.path]),
    [
      [text.split('\n').indexOf('    upstream: &ghost nowhere') + 1, '/routes/150/upstream'],
      [text.split('\n').indexOf('    upstream: *ghost') + 1, '/routes/151/upstream'],
    ],
    formatIssues(errors),
  )
})

test('nested aliases that multiply past the bound ("billion laughs") are refused at the alias that passes it', () => {
  let text = `${HEAD}routes: []\nl0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n`
  for (let i = 1; i < 9; i++) text += `l${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`
  const e = only(load(text))
  assert.match(e.message, new RegExp(`^YAML aliases expand the document past ${MAX_EXPANDED_VALUES} values at "\\*a\\d"`))
  assert.match(e.path, /^\/l\d\/\d$/)
  assert.equal(e.line, 8 + Number(e.path.split('/')[1].slice(1)))
})

test('aliases that nest the document too deep are refused', () => {
  let text = `${HEAD}routes: []\nd0: &d0 [x]\n`
  for (let i = 1; i <= MAX_DEPTH; i++) text += `d${i}: &d${i} [*d${i - 1}]\n`
  const e = only(load(text))
  assert.match(e.message, new RegExp(`nests the document more than ${MAX_DEPTH} levels deep`))
})

test('a YAML 1.1 merge key still merges an anchored mapping', () => {
  const text = `%YAML 1.1\n---\n${HEAD}routes:\n  - &base\n    path: /a\n    upstream: orders\n    auth: public\n  - <<: *base\n    path: /b\n`
  const r = load(text)
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.errors))
  assert.deepEqual(
    r.config.routes.map((route) => [route.path, route.upstream, route.auth]),
    [
      ['/a', 'orders', 'public'],
      ['/b', 'orders', 'public'],
    ],
  )
})
