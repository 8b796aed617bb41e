import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo, type Command } from './command.js'
import { checkConfig } from './commands/check-config.js'
import { keys } from './commands/keys.js'
import { schema } from './commands/schema.js'
import { start } from './commands/start.js'
import { packageVersion } from './version.js'

export const COMMANDS: readonly Command[] = [start, checkConfig, schema, keys]

export function topUsage(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 3
  return `Usage: portcullis <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Options:
  -h, --help       Show this help
  -v, --version    Print the version

Run "portcullis <command> --help" for the options of a command.`
}

/** Dispatches argv (without node and the script) to a command; resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined) {
    io.err(`${topUsage(commands)}\n`)
    return EXIT_USAGE
  }
  if (first === '-h' || first === '--help') {
    io.out(`${topUsage(commands)}\n`)
    return EXIT_OK
  }
  if (first === '-v' || first === '--version') {
    io.out(`${packageVersion()}\n`)
    return EXIT_OK
  }
  if (first === 'help') {
    const target = rest[0] === undefined ? undefined : commands.find((c) => c.name === rest[0])
    if (rest[0] === undefined || target) {
      io.out(`${target ? target.usage : topUsage(commands)}\n`)
      return EXIT_OK
    }
    io.err(`portcullis: unknown command "${rest[0]}"\n\n${topUsage(commands)}\n`)
    return EXIT_USAGE
  }
  const command = commands.find((c) => c.name === first)
  if (!command) {
    io.err(`portcullis: unknown command "${first}"\n\n${topUsage(commands)}\n`)
    return EXIT_USAGE
  }
  try {
    return await command.run(rest, io)
  } catch (err) {
    io.err(`portcullis ${command.name}: ${(err as Error).stack ?? String(err)}\n`)
    return EXIT_FAILURE
  }
}
