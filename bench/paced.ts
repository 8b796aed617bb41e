import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { percentiles, type LoadResult, type LoadSpec } from './load.js'
import { rotate } from './target.js'

export interface PacedSettings {
  /** Requests per second, started on a fixed schedule whatever the server's answers do. */
  readonly rate: number
  readonly durationSec: number
  /** Connections the requests share; a request that finds all of them busy waits for one. */
  readonly connections: number
}

/** A paced run, and how late the driver's own event loop ran (a pause there delays every request
 *  scheduled during it, and counts in their latency as if the server had been slow). */
export interface PacedResult extends LoadResult {
  readonly driverLagMaxMs: number
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
export async function drivePaced(baseUrl: string, spec: LoadSpec, settings: PacedSettings): Promise<PacedResult> {
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
  const lag = monitorEventLoopDelay({ resolution: 1 })
  lag.enable()

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
    lag.disable()
    await pool.close()
  }
  const responses = latencies.length
  const elapsedSec = (lastAt - startedAt) / 1000
  const driverLagMaxMs = lag.max / 1e6
  return { responses, rps: elapsedSec > 0 ? responses / elapsedSec : 0, ...percentiles(latencies), non2xx, errors, statusCodes, elapsedSec, latencies, driverLagMaxMs }
}

/** Distinct Authorization values a driver process cycles through (the warm rows use 16 tokens). */
const MAX_AUTHORIZATIONS = 64

interface Job {
  readonly url: string
  readonly path: string
  readonly authorizations: readonly string[]
  readonly settings: PacedSettings
}

/**
 * drivePaced in a process of its own, kept for the whole equal-load phase (its code stays
 * compiled from one run to the next). In the bench parent a run would share the event loop and
 * the heap with everything the parent holds (every row's latencies, the cold token pool), and a
 * garbage collection there would delay every request scheduled meanwhile.
 */
export interface PacedDriver {
  run(url: string, spec: LoadSpec, settings: PacedSettings): Promise<PacedResult>
  close(): Promise<void>
}

export async function startPacedDriver(): Promise<PacedDriver> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./paced-child.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(child, 'spawn')
  return {
    async run(url, spec, settings) {
      // The spec's token sequence, as far as a driver process needs it: it repeats after its few
      // warm tokens (a cold pool is not offered at equal load).
      const authorizations: string[] = []
      if (spec.authorization) {
        for (let i = 0; i < MAX_AUTHORIZATIONS; i++) authorizations.push(spec.authorization())
      }
      const job: Job = { url, path: spec.path, authorizations, settings }
      const answer = new Promise<PacedResult>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`the paced driver exited (code ${code})`))
        child.once('exit', onExit)
        child.once('message', (m) => {
          child.off('exit', onExit)
          resolve(m as PacedResult)
        })
      })
      child.send(job)
      return answer
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await once(child, 'exit')
    },
  }
}

/** The driver process's side: one job at a time, answered with its result. */
export function servePacedJobs(): void {
  process.on('message', (job: Job) => {
    const authorization = job.authorizations.length > 0 ? rotate(job.authorizations) : undefined
    drivePaced(job.url, { path: job.path, authorization }, job.settings).then(
      (result) => process.send!(result),
      (err: Error) => {
        process.stderr.write(`paced driver: ${err.stack ?? err.message}\n`)
        process.exit(1)
      },
    )
  })
}
