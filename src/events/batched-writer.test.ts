import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBatchedWriter } from './batched-writer.js'

test('lines are held until a batch fills or the writer drains, and arrive whole and in order', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-log-')), 'sub', 'a.log')
  const w = createBatchedWriter(file)
  w.write('one\n')
  w.write('two\n')
  assert.equal(readFileSync(file, 'utf8'), '', 'nothing written before a flush')
  await w.drain()
  assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\n')
  const line = 'x'.repeat(1000) + '\n'
  for (let i = 0; i < 20; i++) w.write(line)
  await w.close()
  assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\n' + line.repeat(20))
})

test('a full batch starts an asynchronous write without waiting for a flush; nothing is lost or reordered', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-log-')), 'b.log')
  const w = createBatchedWriter(file)
  const lines = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(4, '0')} ${'y'.repeat(500)}\n`)
  for (const l of lines) w.write(l)
  for (let i = 0; i < 100 && readFileSync(file, 'utf8').length < 16 * 1024; i++) await sleep(10)
  assert.ok(readFileSync(file, 'utf8').length >= 16 * 1024, 'written in the background')
  await w.close()
  assert.equal(readFileSync(file, 'utf8'), lines.join(''))
  assert.equal(w.dropped(), 0)
})

test('lines of any size and any characters arrive byte for byte: multi-byte UTF-8 across chunk ends, lines longer than a chunk', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-log-')), 'c.log')
  const w = createBatchedWriter(file)
  const lines: string[] = []
  for (let i = 0; i < 400; i++) {
    // 2-, 3- and 4-byte characters (the last a surrogate pair), in lines of varied lengths.
    if (i % 97 === 0) lines.push(`${i} ${'z'.repeat(100_000)}\n`)
    else lines.push(`${i} ${'é€😀'.repeat(i % 50)} ${'a'.repeat((i * 37) % 700)}\n`)
  }
  for (const l of lines) w.write(l)
  await w.close()
  assert.equal(readFileSync(file, 'utf8'), lines.join(''))
  assert.equal(w.dropped(), 0)
})
