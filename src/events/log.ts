import pino, { type Logger, type DestinationStream } from 'pino'
import type { EventSink, SecurityEvent } from './event.js'

/**
 * Opens a log destination: "stdout", "stderr" or a file path. Asynchronous writes (batched by sonic-boom while a write is pending) keep
 * logging off the request's critical path; flush() drains them on shutdown.
 */
export function openDestination(target: string): DestinationStream & { flushSync?: () => void; end?: () => void } {
  const dest = target === 'stdout' ? 1 : target === 'stderr' ? 2 : target
  return pino.destination({ dest, sync: false, mkdir: true })
}

const base = { base: undefined, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' } as const

export interface Logs {
  readonly logger: Logger
  readonly events: EventSink
  readonly access: Logger | undefined
  flush(): Promise<void>
}

const destinations = new Map<string, ReturnType<typeof openDestination>>()
/** One destination per target, shared by the loggers that write there, so lines never interleave. */
function destinationFor(target: string): ReturnType<typeof openDestination> {
  let d = destinations.get(target)
  if (!d) {
    d = openDestination(target)
    destinations.set(target, d)
  }
  return d
}

export function createLogs(options: { level: string; events: string; access: string | false }): Logs {
  const logger = pino({ ...base, level: options.level, name: 'portcullis' }, destinationFor('stdout'))
  const eventLogger = pino({ ...base, level: 'info', name: 'security' }, destinationFor(options.events))
  const access = options.access === false ? undefined : pino({ ...base, level: 'info', name: 'access' }, destinationFor(options.access))
  const events: EventSink = {
    emit(event: SecurityEvent) {
      try {
        eventLogger.info({ event: event.type, ...event, type: undefined, time: undefined }, event.type)
      } catch {
        // Emitting must never fail a request.
      }
    },
    flush: () => flushAll(),
  }
  return { logger, events, access, flush: () => flushAll() }
}

export async function flushAll(): Promise<void> {
  for (const d of destinations.values()) {
    try {
      d.flushSync?.()
    } catch {
      // destination not ready yet (sonic-boom before open): nothing buffered to lose
    }
  }
}
