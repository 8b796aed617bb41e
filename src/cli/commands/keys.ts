import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { KEY_ALGS, KeySetError, newKeySet, rotateKeySet, type KeyAlg } from '../../tokens/key-set.js'
import { readKeySetFile, writeKeySetFile } from '../../tokens/key-set-file.js'
import { EXIT_FAILURE, EXIT_OK, parseCommand, usageError, type CliIo, type Command } from '../command.js'

const DEFAULT_OVERLAP_SEC = 300
const DEFAULT_PUBLISH_AHEAD_SEC = 60

const usage = `Usage: portcullis keys <subcommand> [options]

Manages the key set the gateway signs internal tokens with (internalTokens.signingKeys,
see docs/internal-tokens.md). The file holds private keys: it is written with mode 0600;
keep it out of version control. Nothing here prints key material.

Subcommands:
  generate --out FILE [--alg EdDSA|ES256] [--force]
      Creates a key set with one current key (default EdDSA). Refuses to replace an
      existing FILE unless --force.

  rotate-signing --keys FILE [--overlap SEC] [--publish-ahead SEC] [--alg EdDSA|ES256]
      Adds a new current key. It is published at once and starts signing after
      --publish-ahead seconds (default ${DEFAULT_PUBLISH_AHEAD_SEC}), so services that cached the JWKS
      find it when they first see its kid. The replaced key stays published for
      --overlap seconds after that (default ${DEFAULT_OVERLAP_SEC}), so the tokens it signed keep
      verifying; then it leaves the JWKS and they no longer do. Keys already retired
      are removed from FILE. Reload every gateway (SIGHUP) right after.
      Emergency (compromised key): --publish-ahead 0 --overlap 0.

Options:
  -h, --help   Show this help`

const isDirectory = (path: string) => statSync(path, { throwIfNoEntry: false })?.isDirectory() === true

const isAlg = (v: string): v is KeyAlg => (KEY_ALGS as readonly string[]).includes(v)

function seconds(value: string | undefined, name: string, def: number): number | string {
  if (value === undefined) return def
  if (!/^\d+$/.test(value) || Number(value) > 31_536_000) return `--${name} must be a whole number of seconds (at most one year)`
  return Number(value)
}

/** `portcullis keys generate | rotate-signing`. */
export const keys: Command = {
  name: 'keys',
  summary: 'Generate or rotate the signing keys of internal tokens',
  usage,
  async run(argv, io: CliIo) {
    const parsed = parseCommand(keys, argv, io, {
      out: { type: 'string' },
      keys: { type: 'string' },
      alg: { type: 'string' },
      overlap: { type: 'string' },
      'publish-ahead': { type: 'string' },
      force: { type: 'boolean' },
    })
    if (typeof parsed === 'number') return parsed
    const [sub, ...extra] = parsed.positionals
    if (sub === undefined) return usageError(keys, io, 'missing subcommand (generate or rotate-signing)')
    if (extra.length) return usageError(keys, io, `unexpected argument "${extra[0]}"`)
    const v = parsed.values
    const alg = v.alg
    if (alg !== undefined && !isAlg(alg)) return usageError(keys, io, `--alg must be one of ${KEY_ALGS.join(', ')}`)
    const now = Date.now()

    if (sub === 'generate') {
      const stray = (['keys', 'overlap', 'publish-ahead'] as const).find((o) => v[o] !== undefined)
      if (stray) return usageError(keys, io, `--${stray} is not an option of "keys generate"`)
      if (!v.out) return usageError(keys, io, 'missing --out FILE')
      const set = newKeySet(alg ?? 'EdDSA', now)
      try {
        writeKeySetFile(resolve(io.cwd, v.out), set, { overwrite: v.force ?? false })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        // --force cannot replace a folder: say what it is instead of suggesting it.
        if (code === 'EISDIR' || (code === 'EEXIST' && isDirectory(resolve(io.cwd, v.out)))) io.err(`portcullis keys: cannot write ${v.out}: it is a directory\n`)
        else if (code === 'EEXIST') io.err(`portcullis keys: ${v.out} exists; use --force to replace it (its keys would be lost)\n`)
        else io.err(`portcullis keys: cannot write ${v.out}: ${code ?? (err as Error).message}\n`)
        return EXIT_FAILURE
      }
      const k = set.keys[0]
      io.out(`${v.out}: new key set (mode 0600), current key ${k.kid} (${k.alg})\n`)
      return EXIT_OK
    }

    if (sub === 'rotate-signing') {
      if (v.out !== undefined || v.force !== undefined) return usageError(keys, io, `--${v.out !== undefined ? 'out' : 'force'} is not an option of "keys rotate-signing"`)
      if (!v.keys) return usageError(keys, io, 'missing --keys FILE')
      const overlapSec = seconds(v.overlap, 'overlap', DEFAULT_OVERLAP_SEC)
      if (typeof overlapSec === 'string') return usageError(keys, io, overlapSec)
      const publishAheadSec = seconds(v['publish-ahead'], 'publish-ahead', DEFAULT_PUBLISH_AHEAD_SEC)
      if (typeof publishAheadSec === 'string') return usageError(keys, io, publishAheadSec)
      const file = resolve(io.cwd, v.keys)
      try {
        const before = readKeySetFile(file)
        const rotated = rotateKeySet(before, { alg, overlapSec, publishAheadSec, nowMs: now })
        writeKeySetFile(file, rotated.set, { overwrite: true })
        const { added } = rotated
        // Every earlier key and when it leaves the JWKS, so an operator rotating out a compromised
        // key sees that none stays published.
        const earlier = before.keys
          .filter((k) => k.state === 'current' || (k.retireAt !== undefined && Date.parse(k.retireAt) > now))
          .map((k) => {
            const kept = rotated.set.keys.find((r) => r.kid === k.kid)
            const until = kept?.retireAt !== undefined && Date.parse(kept.retireAt) > now ? `until ${kept.retireAt}` : 'no longer (out of the JWKS now)'
            return `  previous key    ${k.kid} (${k.alg}): published ${until}\n`
          })
        io.out(
          `${v.keys}: rotated\n` +
            `  new current key ${added.kid} (${added.alg}): published now, signs ${added.activateAt ? `from ${added.activateAt}` : 'now'}\n` +
            earlier.join('') +
            `Reload every gateway now (SIGHUP) so the new key is published ahead of its use.\n`,
        )
        return EXIT_OK
      } catch (err) {
        if (err instanceof KeySetError) io.err(`portcullis keys: ${v.keys}: the key set ${err.message}\n`)
        else io.err(`portcullis keys: cannot rotate ${v.keys}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`)
        return EXIT_FAILURE
      }
    }
    return usageError(keys, io, `unknown subcommand "${sub}" (generate or rotate-signing)`)
  },
}
