import { resolve } from 'node:path'
import { formatIssues, loadConfigFile, type ConfigIssue } from '../../config/load.js'
import { EXIT_FAILURE, EXIT_OK, parseCommand, usageError, type CliIo, type Command } from '../command.js'

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/**
 * `portcullis check-config FILE`: the same load as `start` (schema, references, semantic checks,
 * security lint), without listening. Exit 0 when the gateway would start with this file.
 */
export const checkConfig: Command = {
  name: 'check-config',
  summary: 'Validate a config file and run the security lint',
  usage: `Usage: portcullis check-config [options] FILE

Validates FILE (YAML or JSON) exactly as "start" would: schema, \${env:}/\${file:}
references, cross-references and the security lint. Prints every problem as
  FILE:LINE:COLUMN  /json/path  message  [lint-rule]

Options:
  --json       Print the result as JSON on stdout
  -h, --help   Show this help

Exit status: 0 valid, 1 invalid, 2 usage error.`,
  async run(argv, io: CliIo) {
    const parsed = parseCommand(checkConfig, argv, io, { json: { type: 'boolean' } })
    if (typeof parsed === 'number') return parsed
    if (parsed.positionals.length !== 1) return usageError(checkConfig, io, parsed.positionals.length ? 'expected exactly one FILE' : 'missing FILE')
    const shown = parsed.positionals[0]
    const result = await loadConfigFile(resolve(io.cwd, shown), io.env)
    // Report the file as the user typed it, not as an absolute path.
    const display = (issues: readonly ConfigIssue[] | undefined) => (issues ?? []).map((i) => ({ ...i, file: shown }))
    const errors = result.ok ? [] : display(result.errors)
    const warnings = display(result.warnings)

    if (parsed.values.json) {
      io.out(`${JSON.stringify({ ok: result.ok, file: shown, errors, warnings }, null, 2)}\n`)
      return result.ok ? EXIT_OK : EXIT_FAILURE
    }
    if (warnings.length) io.err(`${formatIssues(warnings, 'warning')}\n`)
    if (!result.ok) {
      io.err(`${shown}: ${plural(errors.length, 'error')}\n${formatIssues(errors)}\n`)
      return EXIT_FAILURE
    }
    const c = result.config
    const summary = [plural(c.listeners.length, 'listener'), plural(c.issuers.length, 'issuer'), plural(c.upstreams.length, 'upstream'), plural(c.routes.length, 'route')]
    io.out(`${shown}: OK (${summary.join(', ')}${warnings.length ? `; ${plural(warnings.length, 'warning')}` : ''})\n`)
    return EXIT_OK
  },
}
