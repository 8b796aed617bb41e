import { parseArgs, type ParseArgsConfig } from 'node:util'

/** What a command may touch of the process: output, environment, working directory. Fake in tests. */
export interface CliIo {
  out(text: string): void
  err(text: string): void
  readonly env: NodeJS.ProcessEnv
  readonly cwd: string
}

/** One CLI verb, one file (src/cli/commands/<verb>.ts). run() resolves with the exit code. */
export interface Command {
  readonly name: string
  readonly summary: string
  readonly usage: string
  run(argv: readonly string[], io: CliIo): Promise<number>
}

/** 0 success, 1 the thing checked is wrong (a bad config), 2 the command line itself is wrong. */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

type Options = NonNullable<ParseArgsConfig['options']>
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: true; strict: true }>>

/**
 * parseArgs with `--help` on every command. Returns the exit code to stop with (help shown, or a
 * usage error printed) or the parsed arguments.
 */
export function parseCommand<O extends Options>(command: Pick<Command, 'name' | 'usage'>, argv: readonly string[], io: CliIo, options: O): number | Parsed<O> {
  let parsed: Parsed<O>
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }) as Parsed<O>
  } catch (err) {
    io.err(`portcullis ${command.name}: ${(err as Error).message}\n\n${command.usage}\n`)
    return EXIT_USAGE
  }
  if ((parsed.values as { help?: boolean }).help) {
    io.out(`${command.usage}\n`)
    return EXIT_OK
  }
  return parsed
}

export function usageError(command: Pick<Command, 'name' | 'usage'>, io: CliIo, message: string): number {
  io.err(`portcullis ${command.name}: ${message}\n\n${command.usage}\n`)
  return EXIT_USAGE
}
