import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import type { FailureParams } from './failure-score.js'
import { LIMITS_LUA } from './redis-script.js'
import type { CheckResult, Decision, FailureOutcome, LimitStore, PolicyCheck } from './store.js'

/**
 * The shared store: counters in Redis, decided by one Lua script per request (redis-script.ts).
 * One round trip per request for all its policies, atomic, and every key expires on its own.
 *
 * The client never waits for Redis: no offline queue (a command while disconnected fails at
 * once), no per-command retries, a command timeout, and reconnection in the background with a
 * capped backoff. Failing fast is what lets resilient-store.ts apply the configured policy
 * instead of piling requests up behind a dead connection.
 *
 * Clock: with clock "redis" (the default) the script reads Redis TIME, so every gateway instance
 * uses the same clock and a skewed gateway host cannot shorten or stretch anyone's window. With
 * clock "gateway" the caller's time is sent; tests use it to inject time.
 */
export interface RedisStoreOptions {
  /** redis:// URL; ignored when `client` is given. */
  readonly url?: string
  /** An existing client (tests). The store does not close a client it did not create. */
  readonly client?: Redis
  readonly keyPrefix: string
  readonly commandTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly clock: 'redis' | 'gateway'
  /** Automatic pipelining (default false); see redisClientOptions. */
  readonly pipelining?: boolean
}

export interface RedisStore extends LimitStore {
  readonly kind: 'redis'
  readonly client: Redis
  check(checks: readonly PolicyCheck[], nowMs: number): Promise<Decision>
  recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): Promise<readonly FailureOutcome[]>
  clearFailures(keys: readonly string[]): Promise<void>
  /** True while the connection is up and ready for commands. */
  isReady(): boolean
  /** Calls back each time the connection becomes ready (first connect and every reconnect). */
  onReady(listener: () => void): void
  /** Resolves when connected (rejects after the connect timeout). */
  ready(): Promise<void>
}

const SHA = createHash('sha1').update(LIMITS_LUA).digest('hex')
const PERIOD_CODE = { hour: 'h', day: 'd', month: 'm' } as const

/** The client options that make Redis failures fast and bounded. */
export function redisClientOptions(o: Pick<RedisStoreOptions, 'commandTimeoutMs' | 'connectTimeoutMs' | 'pipelining'>) {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    // Reconnect forever in the background, at most once a second: recovery needs no restart.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    lazyConnect: false,
    // Opt-in (limits.store.redis.pipelining): the commands of all requests handled in one
    // event-loop turn go out in one socket write, which saves system calls and Redis CPU. Off by
    // default because ioredis holds calls made while a batch is out until that batch settles and
    // only then starts their timeout: against a hung Redis a request could wait about twice
    // commandTimeoutMs, and the fail-fast bound is worth more (docs/limits.md).
    enableAutoPipelining: o.pipelining ?? false,
  } as const
}

export function createRedisStore(options: RedisStoreOptions): RedisStore {
  const owned = options.client === undefined
  const client = options.client ?? new Redis(options.url ?? 'redis://127.0.0.1:6379', redisClientOptions(options))
  const prefix = options.keyPrefix
  const gatewayClock = options.clock === 'gateway'
  const readyListeners: Array<() => void> = []

  // An error event without a listener is printed by ioredis; errors are handled per command and
  // reported by the resilient store, so here they are only acknowledged.
  client.on('error', () => {})
  client.on('ready', () => {
    // Load the script once per connection so EVALSHA hits; EVAL stays the fallback below.
    client.script('LOAD', LIMITS_LUA).catch(() => {})
    for (const l of readyListeners) l()
  })

  async function run(keys: readonly string[], args: readonly (string | number)[]): Promise<number[]> {
    try {
      return (await client.evalsha(SHA, keys.length, ...keys, ...args)) as number[]
    } catch (err) {
      // NOSCRIPT: Redis restarted or its script cache was flushed. EVAL runs and caches it again.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return (await client.eval(LIMITS_LUA, keys.length, ...keys, ...args)) as number[]
    }
  }

  const nowArg = (nowMs: number): string => (gatewayClock ? String(Math.floor(nowMs)) : '')

  async function check(checks: readonly PolicyCheck[], nowMs: number): Promise<Decision> {
    const keys: string[] = new Array(checks.length)
    const args: (string | number)[] = ['check', nowArg(nowMs)]
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i]
      keys[i] = prefix + c.key
      switch (c.kind) {
        case 'rate':
          args.push('r', c.intervalUs, c.burst)
          break
        case 'quota':
          args.push('q', c.limit, PERIOD_CODE[c.period])
          break
        case 'concurrency':
          args.push('c', c.limit, c.leaseMs, c.leaseId)
          break
        case 'guard': {
          const p = c.params
          args.push('g', c.countBlocked ? '1' : '0', p.intervalUs, p.threshold, p.lockAfter, p.lockMs, p.baseDelayMs, p.maxDelayMs)
          break
        }
      }
    }
    let reply: number[]
    try {
      reply = await run(keys, args)
    } catch (err) {
      // A call that timed out may still run: Redis has it, only slower than commandTimeoutMs. Its
      // slots would then stay taken for a whole lease, and enough of them would fill the cap of a
      // key long after Redis recovered. The removal goes out after the script on this connection,
      // so it undoes the script if it runs, and removes nothing if it never does.
      let lost: string[] | undefined
      for (let i = 0; i < checks.length; i++) {
        const c = checks[i]
        if (c.kind === 'concurrency') (lost ??= []).push(keys[i], c.leaseId)
      }
      if (lost) releaser(lost)()
      throw err
    }
    const allowed = reply[0] === 1
    const results: CheckResult[] = new Array(checks.length)
    let leased: string[] | undefined
    for (let i = 0, j = 4; i < checks.length; i++, j += 4) {
      const c = checks[i]
      if (c.kind === 'guard') {
        const flags = reply[j + 3]
        results[i] = { remaining: reply[j], resetMs: reply[j + 1], retryAfterMs: reply[j + 2], locked: (flags & 1) === 1, newlyLocked: (flags & 2) === 2 }
      } else {
        results[i] = { remaining: reply[j], resetMs: reply[j + 1], retryAfterMs: reply[j + 2] }
        if (allowed && c.kind === 'concurrency') (leased ??= []).push(keys[i], c.leaseId)
      }
    }
    const decision = { allowed, denied: reply[1], retryAfterMs: reply[2], results, source: 'primary' as const }
    return leased ? { ...decision, release: releaser(leased) } : decision
  }

  /** Frees slots with one pipelined round trip. A lost release is healed by the lease expiry. */
  function releaser(pairs: string[]): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      const p = client.pipeline()
      for (let i = 0; i < pairs.length; i += 2) p.zrem(pairs[i], pairs[i + 1])
      p.exec().catch(() => {})
    }
  }

  async function recordFailures(keys: readonly string[], params: FailureParams, nowMs: number): Promise<FailureOutcome[]> {
    if (keys.length === 0) return []
    const reply = await run(
      keys.map((k) => prefix + k),
      ['fail', nowArg(nowMs), params.intervalUs, params.threshold, params.lockAfter, params.lockMs, params.baseDelayMs, params.maxDelayMs],
    )
    return keys.map((_, i) => {
      const flags = reply[i * 3 + 2]
      const retryAfterMs = reply[i * 3 + 1]
      return { score: reply[i * 3], blocked: retryAfterMs > 0, locked: (flags & 1) === 1, newlyLocked: (flags & 2) === 2, retryAfterMs }
    })
  }

  return {
    kind: 'redis',
    client,
    check,
    recordFailures,
    async clearFailures(keys) {
      if (keys.length) await client.unlink(...keys.map((k) => prefix + k))
    },
    isReady: () => client.status === 'ready',
    onReady(listener) {
      readyListeners.push(listener)
    },
    ready() {
      if (client.status === 'ready') return Promise.resolve()
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error('Redis not ready within the connect timeout'))
        }, options.connectTimeoutMs)
        const onReady = () => {
          cleanup()
          resolve()
        }
        const cleanup = () => {
          clearTimeout(timer)
          client.off('ready', onReady)
        }
        client.on('ready', onReady)
      })
    },
    async close() {
      if (!owned) return
      try {
        await client.quit()
      } catch {
        client.disconnect()
      }
    },
  }
}
