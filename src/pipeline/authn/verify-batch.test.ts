import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ParsedJwt } from './jwt-parse.js'
import type { SigningKey } from './jwt-verify.js'
import { batchedVerifier } from './verify-batch.js'

const jwt = (token: string) => ({ token }) as unknown as ParsedJwt
const key = {} as SigningKey

test('checks asked for in one turn run together after its I/O, each with its own answer', async () => {
  let turn = 'asking'
  let microtaskRan = false
  const calls: Array<{ token: string; turn: string; microtaskRan: boolean }> = []
  const verify = batchedVerifier((j) => {
    // Back to back means nothing else runs between two checks, not even a microtask.
    if (calls.length === 0) queueMicrotask(() => (microtaskRan = true))
    calls.push({ token: j.token, turn, microtaskRan })
    if (j.token === 'throws') throw new Error('OpenSSL said no')
    return j.token === 'good'
  })
  const answers = Promise.all([verify(jwt('good'), key), verify(jwt('bad'), key), verify(jwt('throws'), key), verify(jwt('good'), key)])
  assert.equal(calls.length, 0, 'nothing is checked where it is asked for')
  // Scheduled after the batch: it runs once the whole batch has run.
  setImmediate(() => (turn = 'next'))
  assert.deepEqual(await answers, [true, false, false, true])
  assert.deepEqual(
    calls.map((c) => c.turn),
    ['asking', 'asking', 'asking', 'asking'],
    'all four before an immediate scheduled after them',
  )
  assert.deepEqual(
    calls.map((c) => c.microtaskRan),
    [false, false, false, false],
    'all four in one callback, back to back',
  )
  await new Promise(setImmediate)
  assert.equal(turn, 'next')
  // A check asked for later makes a batch of its own.
  assert.equal(await verify(jwt('good'), key), true)
  assert.equal(calls.length, 5)
  assert.equal(calls[4].turn, 'next')
})

test('verifiers made separately share one batch', async () => {
  const order: string[] = []
  const a = batchedVerifier(() => (order.push('a'), true))
  const b = batchedVerifier(() => (order.push('b'), false))
  const done = Promise.all([a(jwt('x'), key), b(jwt('y'), key), a(jwt('z'), key)])
  let between = false
  setImmediate(() => (between = order.length === 3))
  assert.deepEqual(await done, [true, false, true])
  assert.deepEqual(order, ['a', 'b', 'a'])
  await new Promise(setImmediate)
  assert.ok(between, 'the three ran before an immediate scheduled after them')
})
