import autocannon, { type AutocannonRequest } from 'autocannon'

/** What a target asks the load generator to send. */
export interface LoadSpec {
  /** Request path (GET). */
  readonly path: string
  /** Returns the Authorization header value for the next request; called once per request. */
  readonly authorization?: () => string
  /** Hard cap on requests, for finite request material (e.g. a pool of never-seen tokens). */
  readonly amount?: number
}

export interface LoadSettings {
  readonly connections: number
  readonly durationSec: number
  /** Total requests per second offered (autocannon overallRate); 0 or absent = unlimited. */
  readonly rate?: number
}

/** One autocannon run, or several runs of the same row combined. */
export interface LoadResult {
  /** Responses received. */
  readonly responses: number
  /** Responses per second over the time from the first request to the last response. */
  readonly rps: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly non2xx: number
  /** Connection errors and timeouts. */
  readonly errors: number
  readonly statusCodes: Record<string, number>
  readonly elapsedSec: number
  /** Every response time (ms), for combining runs; dropped from the JSON output. */
  readonly latencies: number[]
}

/** Merges runs of one row: rates over the summed time, percentiles over all responses. */
export function combine(runs: readonly LoadResult[]): LoadResult {
  const latencies = runs.flatMap((r) => r.latencies)
  const responses = runs.reduce((n, r) => n + r.responses, 0)
  const elapsedSec = runs.reduce((n, r) => n + r.elapsedSec, 0)
  const statusCodes: Record<string, number> = {}
  for (const r of runs) for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n
  return {
    responses,
    rps: elapsedSec > 0 ? responses / elapsedSec : 0,
    ...percentiles(latencies),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    statusCodes,
    elapsedSec,
    latencies,
  }
}

export function percentiles(values: number[]): { p50Ms: number; p99Ms: number } {
  if (values.length === 0) return { p50Ms: 0, p99Ms: 0 }
  const sorted = Float64Array.from(values).sort()
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
  return { p50Ms: at(0.5), p99Ms: at(0.99) }
}

/**
 * One autocannon run against `baseUrl`. Pipelining stays at 1: a gateway sees one request at a
 * time per connection in practice, and pipelining flatters servers that batch writes.
 */
export function drive(baseUrl: string, spec: LoadSpec, settings: LoadSettings): Promise<LoadResult> {
  const next = spec.authorization
  // A request object per connection: autocannon keeps the built request buffer on the request
  // object, and with one shared object every connection's first request would carry the token
  // built last (the same one), which would break "every cold request carries a new token".
  const perClient = (): AutocannonRequest[] => [
    next
      ? {
          method: 'GET',
          path: spec.path,
          // Rebuilt per request because setupRequest is present: every request can carry a
          // different token. All rows use this path so the load generator costs the same.
          setupRequest: (req) => {
            req.headers = { ...req.headers, authorization: next() }
            return req
          },
        }
      : { method: 'GET', path: spec.path },
  ]
  const amount = spec.amount !== undefined ? Math.max(spec.amount, settings.connections) : undefined
  return new Promise<LoadResult>((resolve, reject) => {
    const startedAt = performance.now()
    let lastAt = startedAt
    let responses = 0
    // autocannon's own histogram has 1 ms resolution; its response event carries the exact time.
    const latencies: number[] = []
    const instance = autocannon(
      {
        url: baseUrl + spec.path,
        connections: settings.connections,
        pipelining: 1,
        duration: settings.durationSec,
        amount,
        ...(settings.rate ? { overallRate: settings.rate } : {}),
        timeout: 10,
        // autocannon checks its stop flag on each sample tick: 100 ms ticks end a run within
        // 100 ms of its duration instead of rounding it up to the next whole second.
        sampleInt: 100,
        setupClient: (client) => client.setRequests(perClient()),
      },
      (err, r) => {
        clearTimeout(cap)
        if (err) return reject(err)
        // autocannon only stops on a sampling tick, so its own duration can include idle time
        // after the last response (always so with `amount`). Rate is computed from our own clock.
        const elapsedSec = (lastAt - startedAt) / 1000
        const statusCodes: Record<string, number> = {}
        for (const [code, { count }] of Object.entries(r.statusCodeStats)) statusCodes[code] = count
        resolve({
          responses,
          rps: elapsedSec > 0 ? responses / elapsedSec : 0,
          ...percentiles(latencies),
          non2xx: r.non2xx,
          errors: r.errors,
          statusCodes,
          elapsedSec,
          latencies,
        })
      },
    )
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTimeMs: number) => {
      responses++
      latencies.push(responseTimeMs)
      lastAt = performance.now()
    })
    // autocannon ignores `duration` when `amount` is set; the duration still bounds the run.
    const cap = setTimeout(() => instance.stop(), settings.durationSec * 1000)
  })
}
