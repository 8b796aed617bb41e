import { openSync, writeSync, closeSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * A line writer that batches: lines are collected and written in one call per 16 KiB or per
 * flush interval, whichever comes first. pino's own destination (sonic-boom) measures the byte
 * length of its whole pending buffer on every write, which flattens a growing string once per
 * log line; at one access-log line per request that showed up as several percent of the
 * gateway's CPU. Here a write is an array push.
 *
 * Never blocks a request and never grows without bound: past MAX_PENDING bytes (a reader that
 * stopped reading), new lines are dropped and counted.
 */
export interface BatchedWriter {
  write(line: string): boolean
  /** Writes out what is pending (synchronously for files, through the stream for stdout/stderr). */
  flush(): void
  readonly dropped: () => number
  close(): void
}

const BATCH_BYTES = 16 * 1024
const MAX_PENDING = 8 * 1024 * 1024

export function createBatchedWriter(target: string): BatchedWriter {
  let out: (chunk: string) => void
  let closeFd: (() => void) | undefined
  if (target === 'stdout' || target === 'stderr') {
    const stream = target === 'stdout' ? process.stdout : process.stderr
    out = (chunk) => void stream.write(chunk)
  } else {
    mkdirSync(dirname(target), { recursive: true })
    const fd = openSync(target, 'a')
    out = (chunk) => void writeSync(fd, chunk)
    closeFd = () => closeSync(fd)
  }
  let pending: string[] = []
  let pendingBytes = 0
  let dropped = 0

  function flush(): void {
    if (pending.length === 0) return
    const chunk = pending.length === 1 ? pending[0] : pending.join('')
    pending = []
    pendingBytes = 0
    try {
      out(chunk)
    } catch {
      // A log target that fails (disk full, closed pipe) must not fail requests.
      dropped++
    }
  }

  return {
    write(line) {
      if (pendingBytes > MAX_PENDING) {
        dropped++
        return false
      }
      pending.push(line)
      pendingBytes += line.length
      if (pendingBytes >= BATCH_BYTES) flush()
      return true
    },
    flush,
    dropped: () => dropped,
    close() {
      flush()
      closeFd?.()
    },
  }
}
