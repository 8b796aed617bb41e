import pino, { type Logger } from 'pino'
import type { EventSink, SecurityEvent } from './event.js'
import { createAccessLog, type AccessLog } from './access-log.js'
import { createBatchedWriter, type BatchedWriter } from './batched-writer.js'

/** Lines reach the destination at the latest this long after they were written. */
const FLUSH_INTERVAL_MS = 200

const base = { base: undefined, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' } as const

export interface Logs {
  readonly logger: Logger
  readonly events: EventSink
  readonly access: AccessLog | undefined
  flush(): Promise<void>
}

const destinations = new Map<string, BatchedWriter>()
let flushTimer: NodeJS.Timeout | undefined

/**
 * One destination per target ("stdout", "stderr" or a file path), shared by the loggers that write
 * there, so lines never interleave. Writes are batched (64 KiB, and a timer flushes every 200 ms)
 * and asynchronous, so a busy gateway makes one write per few dozen lines instead of one per
 * request, and a stalled log reader never blocks it; flushAll() writes everything on shutdown.
 * The cost: a crash can lose the last 200 ms of lines.
 */
function destinationFor(target: string): BatchedWriter {
  let d = destinations.get(target)
  if (!d) {
    d = createBatchedWriter(target)
    destinations.set(target, d)
  }
  flushTimer ??= setInterval(flushPending, FLUSH_INTERVAL_MS).unref()
  return d
}

function flushPending(): void {
  for (const d of destinations.values()) {
    try {
      d.flush()
    } catch {
      // a failing target never fails the gateway
    }
  }
}

export function createLogs(options: { level: string; events: string; access: string | false }): Logs {
  const logger = pino({ ...base, level: options.level, name: 'portcullis' }, destinationFor('stdout'))
  const eventLogger = pino({ ...base, level: 'info', name: 'security' }, destinationFor(options.events))
  const access = options.access === false ? undefined : createAccessLog(destinationFor(options.access))
  const events: EventSink = {
    emit(event: SecurityEvent) {
      try {
        // pino writes its own time. No property is written after the spread: V8 defines those
        // through its runtime once the literal has seen several event shapes, which made this
        // line most of a refused request's cost under a flood of bad tokens (perf, Node 20).
        const { type, time: _time, ...fields } = event
        eventLogger.info({ event: type, ...fields }, type)
      } catch {
        // Emitting must never fail a request.
      }
    },
    flush: () => flushAll(),
  }
  return { logger, events, access, flush: () => flushAll() }
}

export async function flushAll(): Promise<void> {
  await Promise.all([...destinations.values()].map((d) => d.drain().catch(() => undefined)))
}
