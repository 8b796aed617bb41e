import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import type { CliIo } from './command.js'
import { createStartCommand } from './commands/start.js'
import { runCli } from './run.js'
import { LINT_RULES } from '../config/lint.js'
import { checkConfig } from './commands/check-config.js'
import { schema } from './commands/schema.js'
import type { StartOptions } from '../main.js'

/** The repository root, found from this (built) file: dist/src/cli → ../../.. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const FIXTURES = join(ROOT, 'test', 'fixtures', 'configs')

function fakeIo(env: NodeJS.ProcessEnv = {}, cwd = FIXTURES): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    env,
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

test('--help at top level lists every command and exits 0; no command prints the usage and exits 2', async () => {
  const io = fakeIo()
  assert.equal(await runCli(['--help'], io), 0)
  for (const name of ['start', 'check-config', 'schema']) assert.match(io.stdout, new RegExp(`\\n  ${name} `))
  const none = fakeIo()
  assert.equal(await runCli([], none), 2)
  assert.match(none.stderr, /^Usage: portcullis <command>/)
})

test('--help works on every command and "help <command>" shows the same text', async () => {
  for (const name of ['start', 'check-config', 'schema']) {
    const io = fakeIo()
    assert.equal(await runCli([name, '--help'], io), 0, name)
    assert.match(io.stdout, new RegExp(`^Usage: portcullis ${name}`))
    const viaHelp = fakeIo()
    assert.equal(await runCli(['help', name], viaHelp), 0)
    assert.equal(viaHelp.stdout, io.stdout)
  }
})

test('--version prints the version of package.json', async () => {
  const io = fakeIo()
  assert.equal(await runCli(['--version'], io), 0)
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  assert.equal(io.stdout, `${pkg.version}\n`)
})

test('an unknown command or option is a usage error with exit code 2', async () => {
  const io = fakeIo()
  assert.equal(await runCli(['frobnicate'], io), 2)
  assert.match(io.stderr, /unknown command "frobnicate"[\s\S]*Usage: portcullis <command>/)
  const opt = fakeIo()
  assert.equal(await runCli(['check-config', '--frob', 'valid.yaml'], opt), 2)
  assert.match(opt.stderr, /--frob[\s\S]*Usage: portcullis check-config/)
  const missing = fakeIo()
  assert.equal(await runCli(['check-config'], missing), 2)
  assert.match(missing.stderr, /missing FILE/)
})

test('"help" with an unknown command names that command, not "help", and exits 2', async () => {
  const io = fakeIo()
  assert.equal(await runCli(['help', 'frobnicate'], io), 2)
  assert.equal(io.stdout, '')
  assert.match(io.stderr, /^portcullis: unknown command "frobnicate"\n[\s\S]*Usage: portcullis <command>/)
})

test('check-config on a valid file prints a one-line summary and exits 0', async () => {
  const io = fakeIo()
  assert.equal(await checkConfig.run(['valid.yaml'], io), 0)
  assert.equal(io.stdout, 'valid.yaml: OK (1 listener, 1 issuer, 1 upstream, 2 routes)\n')
  assert.equal(io.stderr, '')
})

test('check-config on a broken file prints every error with file:line:col and path, and exits 1', async () => {
  const io = fakeIo()
  assert.equal(await checkConfig.run(['broken-schema.yaml'], io), 1)
  assert.equal(io.stdout, '')
  const lines = io.stderr.trim().split('\n')
  assert.equal(lines[0], 'broken-schema.yaml: 6 errors')
  assert.ok(lines.includes('broken-schema.yaml:17:11  /routes/0/auth  must be one of: required, public, certificate'), io.stderr)
  assert.ok(lines.includes('broken-schema.yaml:18:5  /routes/1/upstream  missing required field "upstream"'), io.stderr)
})

test('check-config --json reports the same issues as data', async () => {
  const io = fakeIo()
  assert.equal(await checkConfig.run(['--json', 'lint-acknowledged.yaml'], io), 0)
  const out = JSON.parse(io.stdout) as { ok: boolean; errors: unknown[]; warnings: Array<{ rule: string; line: number; acknowledged: string }> }
  assert.equal(out.ok, true)
  assert.deepEqual(
    out.warnings.map((w) => [w.rule, w.line]),
    [['issuer-no-audience', 6]],
  )
})

test('start passes the config path (resolved against the working directory) and --watch to start()', async () => {
  const calls: StartOptions[] = []
  const cmd = createStartCommand(async () => async (o) => {
    calls.push(o)
    return { urls: [], reload: async () => true, stop: async () => {} }
  })
  const io = fakeIo({}, join(ROOT, 'somewhere'))
  assert.equal(await cmd.run(['--config', 'gw.yaml', '--watch'], io), 0)
  assert.deepEqual(calls, [{ configPath: join(ROOT, 'somewhere', 'gw.yaml'), watch: true }])
})

test('start exits with the exit code start() attaches to its error, and 1 with a message otherwise', async () => {
  const failing = (err: Error) => createStartCommand(async () => async () => Promise.reject(err))
  const rejected = Object.assign(new Error('config rejected'), { exitCode: 1 })
  const io = fakeIo()
  assert.equal(await failing(rejected).run(['-c', 'x.yaml'], io), 1)
  assert.equal(io.stderr, '', 'start() already explained a rejected config')
  const other = fakeIo()
  assert.equal(await failing(new Error('EADDRINUSE')).run(['-c', 'x.yaml'], other), 1)
  assert.match(other.stderr, /EADDRINUSE/)
  const usage = fakeIo()
  assert.equal(await failing(rejected).run([], usage), 2)
})

test('the committed schema/portcullis.schema.json is exactly what "portcullis schema" prints', async () => {
  const io = fakeIo()
  assert.equal(await schema.run([], io), 0)
  const committed = readFileSync(join(ROOT, 'schema', 'portcullis.schema.json'), 'utf8')
  assert.equal(committed, io.stdout, 'schema/portcullis.schema.json is stale: run "npm run build && npm run schema"')
})

test('the field table in docs/config.md is exactly what "portcullis schema --markdown" prints', async () => {
  const io = fakeIo()
  assert.equal(await schema.run(['--markdown'], io), 0)
  const doc = readFileSync(join(ROOT, 'docs', 'config.md'), 'utf8')
  const start = '<!-- fields:start (generated: node dist/src/cli/main.js schema --markdown) -->\n'
  const end = '<!-- fields:end -->'
  assert.ok(doc.includes(start) && doc.includes(end), 'docs/config.md lacks the field table markers')
  const table = doc.slice(doc.indexOf(start) + start.length, doc.indexOf(end))
  assert.equal(table, io.stdout, 'docs/config.md field table is stale: replace it with the output of "node dist/src/cli/main.js schema --markdown"')
})

test('an editor validating with the published schema (no defaults applied) accepts the valid fixtures and flags a broken one', () => {
  const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
  const ajv = new Ajv2020({ allErrors: true, strict: false })
  addFormats(ajv)
  const validate = ajv.compile(JSON.parse(readFileSync(join(ROOT, 'schema', 'portcullis.schema.json'), 'utf8')) as object)
  const valid = JSON.parse(readFileSync(join(FIXTURES, 'valid.json'), 'utf8')) as unknown
  assert.ok(validate(valid), JSON.stringify(validate.errors))
  assert.ok(!validate({ ...(valid as object), routes: [{ path: '/x', upstream: 'web', auth: 'maybe' }] }))
})

test('the full example of docs/config.md passes check-config, with only the warnings the doc announces', async () => {
  const doc = readFileSync(join(ROOT, 'docs', 'config.md'), 'utf8')
  const section = doc.slice(doc.indexOf('## Full example'))
  const yaml = section.slice(section.indexOf('```yaml\n') + 8, section.indexOf('\n```', section.indexOf('```yaml\n')))
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-doc-'))
  writeFileSync(join(dir, 'portcullis.yaml'), yaml)
  const io = fakeIo({ IDP_CLIENT_AUDIENCE: 'api://orders', LEGACY_HMAC_KEY: 'k'.repeat(40) }, dir)
  assert.equal(await checkConfig.run(['--json', 'portcullis.yaml'], io), 0, io.stdout)
  const out = JSON.parse(io.stdout) as { warnings: Array<{ rule: string }> }
  assert.deepEqual(out.warnings.map((w) => w.rule).sort(), ['hmac-algorithm', 'listener-public-plain', 'upstream-insecure-url'])
})

test('docs/config.md documents every lint rule with its level and whether it can be acknowledged', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'config.md'), 'utf8')
  for (const [id, rule] of Object.entries(LINT_RULES)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${id}\` |`))
    assert.ok(row, `docs/config.md has no row for lint rule ${id}`)
    const [, , level, ack] = row.split('|').map((c) => c.trim().replace(/\*/g, ''))
    assert.equal(level, rule.level, id)
    assert.equal(ack, rule.acknowledgeable ? 'yes' : 'no', id)
  }
})
