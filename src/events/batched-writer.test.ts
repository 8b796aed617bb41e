import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBatchedWriter } from './batched-writer.js'

test('lines are held until a batch fills or flush is called, and arrive whole and in order', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-log-')), 'sub', 'a.log')
  const w = createBatchedWriter(file)
  w.write('one\n')
  w.write('two\n')
  assert.equal(readFileSync(file, 'utf8'), '', 'nothing written before a flush')
  w.flush()
  assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\n')
  const line = 'x'.repeat(1000) + '\n'
  for (let i = 0; i < 20; i++) w.write(line)
  assert.ok(readFileSync(file, 'utf8').length >= 16 * 1024, 'a full batch is written without waiting for a flush')
  w.close()
  assert.equal(readFileSync(file, 'utf8'), 'one\ntwo\n' + line.repeat(20))
})
