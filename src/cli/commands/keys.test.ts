import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CliIo } from '../command.js'
import { runCli } from '../run.js'

function fakeIo(cwd: string): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    env: {},
    cwd,
    out(t: string) {
      io.stdout += t
    },
    err(t: string) {
      io.stderr += t
    },
  }
  return io
}

interface FileKey {
  kid: string
  alg: string
  state: string
  createdAt: string
  activateAt?: string
  retireAt?: string
  privateJwk: { d: string }
}
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { kind: string; keys: FileKey[] }

test('keys generate writes a 0600 key set with one current key, prints its kid but no key material, and refuses to overwrite without --force', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'))
  const io = fakeIo(dir)
  assert.equal(await runCli(['keys', 'generate', '--out', 'k.json', '--alg', 'ES256'], io), 0)
  const file = join(dir, 'k.json')
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const set = read(file)
  assert.equal(set.kind, 'portcullis-signing-keys')
  assert.equal(set.keys.length, 1)
  assert.equal(set.keys[0].alg, 'ES256')
  assert.ok(io.stdout.includes(set.keys[0].kid))
  assert.ok(!io.stdout.includes(set.keys[0].privateJwk.d))

  const again = fakeIo(dir)
  assert.equal(await runCli(['keys', 'generate', '--out', 'k.json'], again), 1)
  assert.match(again.stderr, /exists; use --force/)
  assert.equal(read(file).keys[0].kid, set.keys[0].kid, 'the existing key set is untouched')
  assert.equal(await runCli(['keys', 'generate', '--out', 'k.json', '--force'], fakeIo(dir)), 0)
  assert.notEqual(read(file).keys[0].kid, set.keys[0].kid)
})

test('keys rotate-signing adds a published-ahead current key, keeps the previous one for the overlap, and leaves the file 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'))
  assert.equal(await runCli(['keys', 'generate', '--out', 'k.json'], fakeIo(dir)), 0)
  const file = join(dir, 'k.json')
  const old = read(file).keys[0]
  chmodSync(file, 0o644)
  const io = fakeIo(dir)
  assert.equal(await runCli(['keys', 'rotate-signing', '--keys', 'k.json', '--overlap', '120', '--publish-ahead', '30'], io), 0)
  const keys = read(file).keys
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const current = keys.find((k) => k.state === 'current')!
  const previous = keys.find((k) => k.state === 'previous')!
  assert.equal(previous.kid, old.kid)
  assert.equal(Date.parse(current.activateAt!) - Date.parse(current.createdAt), 30_000)
  assert.equal(Date.parse(previous.retireAt!) - Date.parse(current.activateAt!), 120_000)
  assert.ok(io.stdout.includes(current.kid) && io.stdout.includes(old.kid))
  for (const k of keys) assert.ok(!io.stdout.includes(k.privateJwk.d) && !io.stderr.includes(k.privateJwk.d))
  assert.match(io.stdout, /SIGHUP/)
})

test('keys: usage errors exit 2; an unreadable or broken key set exits 1 without touching it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'))
  for (const argv of [
    ['keys'],
    ['keys', 'frob'],
    ['keys', 'generate'],
    ['keys', 'generate', '--out', 'x', '--alg', 'RS256'],
    ['keys', 'generate', '--out', 'x', '--overlap', '5'],
    ['keys', 'rotate-signing'],
    ['keys', 'rotate-signing', '--keys', 'x', '--overlap', '-1'],
    ['keys', 'rotate-signing', '--keys', 'x', '--publish-ahead', '1.5'],
  ]) {
    assert.equal(await runCli(argv, fakeIo(dir)), 2, argv.join(' '))
  }
  const missing = fakeIo(dir)
  assert.equal(await runCli(['keys', 'rotate-signing', '--keys', 'none.json'], missing), 1)
  assert.match(missing.stderr, /ENOENT/)
  writeFileSync(join(dir, 'bad.json'), '{"kind":"portcullis-signing-keys","version":1,"keys":[]}')
  const bad = fakeIo(dir)
  assert.equal(await runCli(['keys', 'rotate-signing', '--keys', 'bad.json'], bad), 1)
  assert.match(bad.stderr, /has no keys/)
  // A folder is not "a file that exists": --force would not help, so it is not suggested.
  mkdirSync(join(dir, 'folder'))
  for (const argv of [['keys', 'generate', '--out', 'folder'], ['keys', 'generate', '--out', 'folder', '--force']]) {
    const folder = fakeIo(dir)
    assert.equal(await runCli(argv, folder), 1, argv.join(' '))
    assert.equal(folder.stderr, 'portcullis keys: cannot write folder: it is a directory\n', argv.join(' '))
  }
  const help = fakeIo(dir)
  assert.equal(await runCli(['keys', '--help'], help), 0)
  assert.match(help.stdout, /^Usage: portcullis keys/)
})
