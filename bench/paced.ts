import { Pool } from 'undici'
import { percentiles, type LoadResult, type LoadSpec } from './load.js'

export interface PacedSettings {
  /** Requests per second, started on a fixed schedule whatever the server's answers do. */
  readonly rate: number
  readonly durationSec: number
  /** Connections the requests share; a request that finds all of them busy waits for one. */
  readonly connections: number
}

/** How often the schedule is caught up: node's timers fire at most once per millisecond. */
const TICK_MS = 1

/**
 * Drives `baseUrl` at a fixed request rate (open loop) and measures each request's latency from
 * the moment the schedule meant it to start, so a request delayed by busy connections counts its
 * wait (no coordinated omission).
 *
 * Why not autocannon here: its rate option lets each connection send back to back until it has
 * made its share of the second's requests, then pauses to the next second, so a "half load" run is
 * a burst at full load followed by silence, and its latencies are those of a saturated server.
 * Why by hand: the load generators on npm that pace requests evenly measure from the actual send,
 * not the scheduled one. The requests go through undici, the HTTP client the gateway itself uses.
 * Requests that have come due start at each response and at each timer tick (node's timers fire
 * at most once a millisecond): under load, responses come far more often than ticks, so requests
 * start close to their scheduled time instead of in groups of rate / 1000.
 */
export async function drivePaced(baseUrl: string, spec: LoadSpec, settings: PacedSettings): Promise<LoadResult> {
  const pool = new Pool(baseUrl, { connections: settings.connections, pipelining: 1 })
  const total = Math.floor(settings.rate * settings.durationSec)
  const interval = 1000 / settings.rate
  const latencies: number[] = []
  const statusCodes: Record<string, number> = {}
  let non2xx = 0
  let errors = 0
  let started = 0
  let finished = 0
  let lastAt = 0
  const startedAt = performance.now()

  const one = async (scheduledAt: number): Promise<void> => {
    try {
      const headers = spec.authorization ? { authorization: spec.authorization() } : undefined
      const res = await pool.request({ path: spec.path, method: 'GET', headers })
      await res.body.dump()
      const code = String(res.statusCode)
      statusCodes[code] = (statusCodes[code] ?? 0) + 1
      if (res.statusCode < 200 || res.statusCode > 299) non2xx++
      lastAt = performance.now()
      latencies.push(lastAt - scheduledAt)
    } catch {
      errors++
    }
  }

  try {
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const startDue = () => {
        const due = Math.min(total, Math.floor((performance.now() - startedAt) / interval) + 1)
        for (; started < due; started++) void one(startedAt + started * interval).finally(onDone)
      }
      const onDone = () => {
        if (++finished === total) {
          clearTimeout(timer)
          resolve()
        } else startDue()
      }
      const tick = () => {
        startDue()
        timer = started < total ? setTimeout(tick, TICK_MS) : undefined
      }
      tick()
    })
  } finally {
    await pool.close()
  }
  const responses = latencies.length
  const elapsedSec = (lastAt - startedAt) / 1000
  return { responses, rps: elapsedSec > 0 ? responses / elapsedSec : 0, ...percentiles(latencies), non2xx, errors, statusCodes, elapsedSec, latencies }
}
