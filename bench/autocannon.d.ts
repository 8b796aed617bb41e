// The slice of autocannon's programmatic API the bench uses. autocannon ships no types, and this
// small declaration saves a dev dependency on @types/autocannon.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export interface AutocannonRequestData {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string | Buffer
  }

  export interface AutocannonRequest extends AutocannonRequestData {
    /** Called each time this request is built; returning a falsy value skips it. */
    setupRequest?: (req: AutocannonRequestData, context: Record<string, unknown>) => AutocannonRequestData | null | undefined
  }

  export interface AutocannonClient {
    setRequests(requests: AutocannonRequest[]): void
  }

  export interface AutocannonOptions {
    url: string
    connections?: number
    pipelining?: number
    /** Seconds. Ignored by autocannon when `amount` is set. */
    duration?: number
    amount?: number
    overallRate?: number
    timeout?: number
    /** Milliseconds between samples; also how often the stop condition is checked. */
    sampleInt?: number
    headers?: Record<string, string>
    requests?: AutocannonRequest[]
    /** Called once per connection when it is created. */
    setupClient?: (client: AutocannonClient) => void
    excludeErrorStats?: boolean
  }

  export interface Histogram {
    average: number
    mean: number
    stddev: number
    min: number
    max: number
    total: number
    p50: number
    p90: number
    p99: number
    p99_9: number
  }

  export interface AutocannonResult {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    resets: number
    '2xx': number
    statusCodeStats: Record<string, { count: number }>
    latency: Histogram
    requests: Histogram & { sent: number }
  }

  export interface Instance extends EventEmitter {
    stop(): void
  }

  function autocannon(opts: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void): Instance
  export default autocannon
}
