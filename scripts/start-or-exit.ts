import { listenError } from '../src/http/server.js'

export interface Closable {
  close(): Promise<void>
}

/**
 * Starts a service that listens on `host:port`. A port already taken (or any other listen failure)
 * is said plainly, as the gateway says it of its own listeners: `prefix` and `hint` frame the
 * message; the services in `started` are closed, and the process exits 1. A service that starts
 * is added to `started`.
 */
export async function startOrExit<T extends Closable>(
  what: string,
  host: string,
  port: number,
  start: () => Promise<T>,
  options: { prefix?: string; hint?: string; started?: Closable[] } = {},
): Promise<T> {
  try {
    const service = await start()
    options.started?.push(service)
    return service
  } catch (err) {
    process.stderr.write(`${options.prefix ?? ''}${listenError(what, host, port, err).message}${options.hint ?? ''}\n`)
    await Promise.allSettled((options.started ?? []).map((s) => s.close()))
    process.exit(1)
  }
}
