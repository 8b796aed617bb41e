import { resolve } from 'node:path'
import type { Running, StartOptions } from '../../main.js'
import { EXIT_FAILURE, EXIT_OK, parseCommand, usageError, type Command } from '../command.js'

type StartFn = (options: StartOptions) => Promise<Running>

/**
 * `portcullis start --config FILE [--watch]`. The process keeps running on the listeners after
 * run() resolves; signals are handled by start() itself. A rejected config exits with the code
 * start() attaches (1), after start() printed the reasons.
 */
export function createStartCommand(startFn: () => Promise<StartFn>): Command {
  const command: Command = {
    name: 'start',
    summary: 'Start the gateway',
    usage: `Usage: portcullis start --config FILE [options]

Loads FILE (refusing it on any error or unacknowledged lint finding, before
listening), starts the listeners and serves until SIGTERM/SIGINT.
SIGHUP reloads the config; a rejected reload keeps the running config.

Options:
  -c, --config FILE   Config file (YAML or JSON). Required.
  --watch             Reload when FILE changes or is replaced
  -h, --help          Show this help`,
    async run(argv, io) {
      const parsed = parseCommand(command, argv, io, { config: { type: 'string', short: 'c' }, watch: { type: 'boolean' } })
      if (typeof parsed === 'number') return parsed
      if (parsed.positionals.length) return usageError(command, io, `unexpected argument "${parsed.positionals[0]}"`)
      if (!parsed.values.config) return usageError(command, io, 'missing --config FILE')
      try {
        const run = await startFn()
        await run({ configPath: resolve(io.cwd, parsed.values.config), watch: parsed.values.watch ?? false })
        return EXIT_OK
      } catch (err) {
        const e = err as Error & { exitCode?: number }
        // start() has already explained a rejected config; anything else is reported here.
        if (!e.exitCode) io.err(`portcullis start: ${e.message}\n`)
        return e.exitCode ?? EXIT_FAILURE
      }
    },
  }
  return command
}

// Loaded on use, so `portcullis --help` does not pull in the whole gateway.
export const start = createStartCommand(async () => (await import('../../main.js')).start)
