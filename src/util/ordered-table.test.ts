import { test } from 'node:test'
import assert from 'node:assert/strict'
import { entry, OrderedTable, type Entry } from './ordered-table.js'

const keysOf = (t: OrderedTable<string, Entry<string, number>>) => [...t].map((n) => n.key)

function table(...keys: string[]): OrderedTable<string, Entry<string, number>> {
  const t = new OrderedTable<string, Entry<string, number>>()
  keys.forEach((k, i) => t.add(entry(k, i)))
  return t
}

test('entries are listed and shifted from oldest to newest', () => {
  const t = table('a', 'b', 'c')
  assert.deepEqual(keysOf(t), ['a', 'b', 'c'])
  assert.equal(keysOf(t)[0], 'a')
  assert.equal(t.shift()?.key, 'a')
  assert.equal(t.shift()?.key, 'b')
  assert.deepEqual(keysOf(t), ['c'])
  assert.equal(t.size, 1)
  assert.equal(t.shift()?.key, 'c')
  assert.equal(t.shift(), undefined)
  assert.equal([...t][0], undefined)
  assert.equal(t.size, 0)
})

test('deleting anywhere keeps the order and the ends right', () => {
  const t = table('a', 'b', 'c', 'd')
  assert.equal(t.delete('b')?.value, 1)
  assert.equal(t.delete('b'), undefined)
  assert.deepEqual(keysOf(t), ['a', 'c', 'd'])
  t.delete('a')
  assert.equal(keysOf(t)[0], 'c')
  t.delete('d')
  t.add(entry('e', 4))
  assert.deepEqual(keysOf(t), ['c', 'e'])
  assert.equal(t.get('e')?.value, 4)
  assert.equal(t.get('d'), undefined)
})

test('adding an existing key replaces its entry and makes it the newest', () => {
  const t = table('a', 'b', 'c')
  t.add(entry('a', 9))
  assert.deepEqual(keysOf(t), ['b', 'c', 'a'])
  assert.equal(t.get('a')?.value, 9)
  assert.equal(t.size, 3)
})

test('touch moves an entry to the newest end', () => {
  const t = table('a', 'b', 'c')
  t.touch(t.get('a')!)
  assert.deepEqual(keysOf(t), ['b', 'c', 'a'])
  t.touch(t.get('a')!)
  assert.deepEqual(keysOf(t), ['b', 'c', 'a'])
  t.touch(t.get('c')!)
  assert.deepEqual(keysOf(t), ['b', 'a', 'c'])
  assert.equal(t.shift()?.key, 'b')
})

test('the oldest entry is the right one after many deletions (a FIFO of bounded size)', () => {
  const t = new OrderedTable<string, Entry<string, number>>()
  const bound = 100
  for (let i = 0; i < 10_000; i++) {
    t.add(entry(`k${i}`, i))
    // Every third key is deleted again at once (a promoted or expired entry).
    if (i % 3 === 0) t.delete(`k${i}`)
    if (t.size > bound) t.shift()
  }
  const kept = keysOf(t)
  assert.equal(kept.length, bound)
  // The newest 100 keys that were not deleted, in order.
  const expected: string[] = []
  for (let i = 9_999; expected.length < bound; i--) if (i % 3 !== 0) expected.unshift(`k${i}`)
  assert.deepEqual(kept, expected)
})

test('step walks oldest to newest and wraps around, across removals and moves', () => {
  const t = table('a', 'b', 'c', 'd')
  assert.equal(t.step()?.key, 'a')
  // Removing the entry the walk would visit next: the walk goes on with the one after it.
  t.delete('b')
  // Moving that one to the newest end: the walk goes on from its old successor and meets it last.
  t.touch(t.get('c')!)
  assert.deepEqual(keysOf(t), ['a', 'd', 'c'])
  assert.equal(t.step()?.key, 'd')
  assert.equal(t.step()?.key, 'c')
  assert.equal(t.step()?.key, 'a', 'wraps around to the oldest')
  t.clear()
  assert.equal(t.step(), undefined)
  assert.equal(t.size, 0)
  t.add(entry('x', 0))
  assert.equal(t.step()?.key, 'x')
  assert.equal(t.step()?.key, 'x')
})
