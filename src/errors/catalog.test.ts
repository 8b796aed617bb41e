import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { catalog, type ErrorCode } from './catalog.js'

// dist/src/errors → repository root
const docsPath = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url))

test('docs/errors.md lists every catalog code with the same status and event, and nothing else', () => {
  const rows = new Map<string, { status: number; event: string }>()
  for (const line of readFileSync(docsPath, 'utf8').split('\n')) {
    const m = /^\| `(ERR_[A-Z_]+)` \| (\d{3}) \|[^|]*\| `([a-z_.]+)` \|/.exec(line)
    if (m) rows.set(m[1], { status: Number(m[2]), event: m[3] })
  }
  const codes = Object.keys(catalog) as ErrorCode[]
  assert.deepEqual([...rows.keys()].sort(), [...codes].sort())
  for (const code of codes) {
    assert.equal(rows.get(code)!.status, catalog[code].status, `${code} status`)
    assert.equal(rows.get(code)!.event, catalog[code].event, `${code} event`)
  }
})

test('every code is named ERR_<STAGE>_<WHAT> and its event is <stage>.<what>', () => {
  for (const [code, entry] of Object.entries(catalog)) {
    assert.match(code, /^ERR_[A-Z]+(_[A-Z]+)*$/)
    if (code === 'ERR_INTERNAL') continue
    const stage = code.split('_')[1].toLowerCase()
    assert.equal(entry.event.split('.')[0], stage, code)
  }
})
