import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { freePort } from './net.js'

/**
 * Real Redis for tests. The machine's Redis is shared: tests write only under a unique key
 * prefix and delete it afterwards; they never FLUSHALL, SCRIPT FLUSH or stop it. Tests that need
 * to stop Redis start their own redis-server (startRedisServer) on a free port.
 *
 * A missing Redis skips the test with a visible message, unless PORTCULLIS_REQUIRE_SERVICES=1,
 * in which case it fails: CI sets it so that "skipped" can never pass for "tested".
 */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const REQUIRED = process.env.PORTCULLIS_REQUIRE_SERVICES === '1'

/** The URL without credentials, for messages. */
export function showUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

/** Pings Redis once; false if it does not answer within timeoutMs. */
export async function redisReachable(url = REDIS_URL, timeoutMs = 1500): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

/**
 * Returns the Redis URL when Redis answers. Otherwise skips the test (visible in the report) and
 * returns undefined, or throws when PORTCULLIS_REQUIRE_SERVICES=1.
 */
export async function requireRedis(t: TestContext, url = REDIS_URL): Promise<string | undefined> {
  if (await redisReachable(url)) return url
  return unavailable(t, `Redis not reachable at ${showUrl(url)}`)
}

function unavailable(t: TestContext, message: string): undefined {
  if (REQUIRED) throw new Error(`${message} (PORTCULLIS_REQUIRE_SERVICES=1)`)
  t.skip(message)
  return undefined
}

/** A key prefix no other test run uses. */
export function uniquePrefix(label: string): string {
  return `portcullis-test:${label}:${process.pid}:${randomBytes(4).toString('hex')}:`
}

/** Calls `each` with every batch of keys under a prefix (SCAN, on a connection of its own). */
async function scanPrefix(url: string, prefix: string, each: (client: Redis, keys: string[]) => Promise<unknown> | void): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1500, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length) await each(client, keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/** Deletes every key under a prefix (SCAN + UNLINK; never FLUSH on a shared Redis). */
export function deleteByPrefix(url: string, prefix: string): Promise<void> {
  return scanPrefix(url, prefix, (client, keys) => client.unlink(...keys))
}

/** How many keys there are under a prefix. */
export async function countByPrefix(url: string, prefix: string): Promise<number> {
  let n = 0
  await scanPrefix(url, prefix, (_client, keys) => {
    n += keys.length
  })
  return n
}

/** A literal string as a SCAN MATCH glob. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&')
}

export interface OwnRedis {
  readonly port: number
  readonly url: string
  /** Kills the server (SIGKILL: a crash, not a clean shutdown) and waits for it to exit. */
  stop(): Promise<void>
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>
  /** SIGSTOP: the server keeps its connections open but answers nothing (a hung Redis). */
  pause(): void
  /** SIGCONT after pause(). */
  resume(): void
  /** Stops it (if running) and removes its directory. */
  close(): Promise<void>
}

/**
 * Starts a private redis-server on a free port, without persistence. Skips (or fails, with
 * PORTCULLIS_REQUIRE_SERVICES=1) when the redis-server binary cannot be run.
 */
export async function startRedisServer(t: TestContext): Promise<OwnRedis | undefined> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-'))
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    child = proc
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', reject)
      proc.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}`)))
    })
    failed.catch(() => {})
    for (let i = 0; i < 100; i++) {
      const up = await Promise.race([redisReachable(url, 500), failed])
      if (up) return
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`redis-server did not answer on port ${port}`)
  }

  const stop = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null || (proc.signalCode !== null && proc.signalCode !== 'SIGSTOP')) return
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.kill('SIGKILL')
    })
  }

  try {
    await start()
  } catch (err) {
    await stop()
    rmSync(dir, { recursive: true, force: true })
    return unavailable(t, `cannot run redis-server: ${(err as Error).message}`)
  }
  return {
    port,
    url,
    stop,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async close() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
