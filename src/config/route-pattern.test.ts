import { test } from 'node:test'
import assert from 'node:assert/strict'
import { matchesExactly, patternProblem, patternShape } from './route-pattern.js'

test('literal, :name, * and a trailing ** are valid pattern segments', () => {
  for (const p of ['/', '/a', '/a/', '/a/:id', '/a/*/b', '/a/**', '/**', '/v1/items:batch', "/a-b_c.d~e/%20"]) {
    assert.equal(patternProblem(p), undefined, p)
  }
})

test('misplaced wildcards, bad parameters, empty and dot segments are refused with a reason', () => {
  assert.match(patternProblem('/a/**/b')!, /last segment/)
  assert.match(patternProblem('/a/b*')!, /whole segment/)
  assert.match(patternProblem('/a/:')!, /parameter/)
  assert.match(patternProblem('/a/:1x')!, /parameter/)
  assert.match(patternProblem('/a//b')!, /empty segment/)
  assert.match(patternProblem('/a/../b')!, /dot segment/)
  assert.match(patternProblem('/a?x=1')!, /not allowed/)
  assert.match(patternProblem('a')!, /start with/)
})

test('matchesExactly ignores ** patterns but sees literal and one-segment matches', () => {
  assert.ok(matchesExactly('/healthz', '/healthz'))
  assert.ok(matchesExactly('/:x', '/healthz'))
  assert.ok(matchesExactly('/*', '/healthz'))
  assert.ok(!matchesExactly('/**', '/healthz'))
  assert.ok(!matchesExactly('/healthz/**', '/healthz'))
  assert.ok(!matchesExactly('/healthz/x', '/healthz'))
})

test('patterns that differ only in parameter names have the same shape', () => {
  assert.equal(patternShape('/a/:id'), patternShape('/a/*'))
  assert.notEqual(patternShape('/a/:id'), patternShape('/a/b'))
})
