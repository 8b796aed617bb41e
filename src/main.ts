import { realpathSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { loadConfigFile, formatIssues } from './config/load.js'
import type { Config } from './config/schema.js'
import { createLogs, type Logs } from './events/log.js'
import { createGateway, type Gateway } from './gateway.js'
import { createMetrics, startMetricsListener, type Metrics } from './metrics/metrics.js'
import { storeAnswers } from './pipeline/limits/resilient-store.js'
import { listenError, startListeners, type Listeners } from './http/server.js'
import type { RequestContext } from './pipeline/stage.js'

export interface StartOptions {
  readonly configPath: string
  readonly watch?: boolean
}

export interface Running {
  readonly urls: readonly string[]
  reload(): Promise<boolean>
  stop(): Promise<void>
}

const READY_WAIT_MS = 10_000

/**
 * Settings read once, by the listeners or the process, that a reload cannot change: a reload that
 * changes them says so instead of silently keeping the old values.
 */
const RESTART_ONLY: ReadonlyArray<readonly [string, (c: Config) => unknown]> = [
  // A listener's certificate, key, SNI certificates, client CAs and minimum TLS version apply on reload (Listeners.updateTls).
  ['listeners', (c) => c.listeners.map((l) => ({ host: l.host, port: l.port, clientCertificates: l.tls?.clientCertificates ?? 'plain', http2: l.tls?.http2 ?? false, h2c: l.h2c }))],
  ['logging', (c) => c.logging],
  ['metrics', (c) => c.metrics],
  ...(['healthPath', 'readyPath', 'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs', 'maxHeaderBytes', 'maxConnections', 'maxRequestsPerSocket', 'http2MaxConcurrentStreams'] as const).map(
    (f) => [`server.${f}`, (c: Config) => c.server[f]] as const,
  ),
]
/** After draining, how long closing upstream pools and the limit store may take before exit. */
const CLOSE_GRACE_MS = 5_000

/** Prints why the config was refused and returns the error that makes the CLI exit 1. */
function configRejected(reasons: string): Error {
  process.stderr.write(`portcullis: config rejected\n${reasons}\n`)
  return Object.assign(new Error('config rejected'), { exitCode: 1 })
}

/**
 * Process entry: load config → build gateway → listen → handle signals. A config that fails
 * validation or the security lint is refused before anything listens.
 */
export async function start(options: StartOptions): Promise<Running> {
  let first: Awaited<ReturnType<typeof loadConfigFile>>
  try {
    first = await loadConfigFile(options.configPath)
  } catch (err) {
    // As on reload: the error's own message may quote the file.
    throw configRejected(`${options.configPath}  ${unexpectedLoadFailure(err)}`)
  }
  if (!first.ok) {
    throw configRejected(formatIssues(first.errors))
  }
  const config = first.config
  const logs = createLogs({ level: config.logging.level, events: config.logging.events, access: config.logging.access })
  const deps = { now: Date.now, events: logs.events, logger: logs.logger }
  const metrics = createMetrics()
  const access = logs.access
  const onDone = (ctx: RequestContext): void => {
    metrics.requests.inc()
    access?.(ctx)
  }
  for (const w of first.warnings) logs.logger.warn({ file: w.file, line: w.line, path: w.path, rule: w.rule, acknowledged: w.acknowledged }, w.message)

  let gateway: Gateway
  try {
    gateway = createGateway(config, deps, { onDone, metrics })
  } catch (err) {
    throw configRejected(`${options.configPath}  ${(err as Error).message}`)
  }
  // Listen at once (health answers, readiness says "not ready" until keys are in), then load keys.
  let listeners: Listeners | undefined
  let metricsListener: Awaited<ReturnType<typeof startMetricsListener>> | undefined
  try {
    listeners = await startListeners(config, gateway)
    // The gauge follows the running gateway's store, also after a reload replaced it.
    const running = listeners
    metrics.limitStoreUpFrom(() => storeAnswers(running.current().limitStore))
    if (config.metrics.enabled) {
      const m = config.metrics
      metricsListener = await startMetricsListener(metrics, m).catch((err: unknown) => {
        throw listenError('metrics', m.host, m.port, err)
      })
    }
  } catch (err) {
    // A gateway runs whole or not at all: close what opened (the process then exits 1).
    await listeners?.drain(0)
    await Promise.race([gateway.close(), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())])
    logs.logger.error(`start failed: ${(err as Error).message}`)
    await logs.flush()
    throw err
  }
  logs.events.emit({ type: 'config.loaded', time: new Date().toISOString(), file: options.configPath, routes: config.routes.length, issuers: config.issuers.length })
  logs.logger.info({ urls: listeners.urls, metrics: metricsListener?.url }, 'listening')
  void gateway.start().then(() => logs.logger.info({ ready: gateway.ready() }, 'initial key load settled'))
  logs.events.emit({ type: 'gateway.started', time: new Date().toISOString(), urls: listeners.urls, pid: process.pid })

  let stopping: Promise<void> | undefined
  // One reload at a time. A request during one may follow a write the running reload did not see,
  // so it schedules exactly one more after it; further requests until then share that one.
  let reloading: Promise<boolean> | undefined
  let queued: Promise<boolean> | undefined
  const reload = (): Promise<boolean> => {
    // Shutting down: a new pipeline now would never be closed.
    if (stopping) return Promise.resolve(false)
    if (!reloading) {
      reloading = safeReload({ path: options.configPath, listeners, logs, deps, onDone, initial: config, metrics, stopping: () => stopping !== undefined }).finally(() => {
        reloading = undefined
      })
      return reloading
    }
    if (!queued) {
      logs.logger.info('reload requested during a reload; it runs once the current one ends')
      // Runs after the finally above has cleared `reloading`.
      queued = reloading.then(() => {
        queued = undefined
        return reload()
      })
    }
    return queued
  }

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logs.events.emit({ type: 'gateway.stopping', time: new Date().toISOString(), inFlight: listeners.inFlight() })
      // The running config's drain time (a reload may have changed it).
      await listeners.drain(listeners.current().config.server.drainTimeoutMs)
      await metricsListener?.close()
      // Closing pools and stores is bounded too: a shutdown must end even if a peer hangs.
      await Promise.race([listeners.current().close(), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())])
      logs.events.emit({ type: 'gateway.stopped', time: new Date().toISOString() })
      await logs.flush()
    })()
    return stopping
  }

  process.on('SIGHUP', () => void reload())
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      // Whatever hangs (a peer, a log reader), the process ends: exit 1 past every bound.
      setTimeout(() => process.exit(1), listeners.current().config.server.drainTimeoutMs + CLOSE_GRACE_MS + 5_000).unref()
      void stop().then(() => process.exit(0))
    })
  }
  if (options.watch) watchConfig(options.configPath, reload, logs)
  return { urls: listeners.urls, reload, stop }
}

/** How long after a change in the config's folder the file is looked at: a burst of events is one look. */
const WATCH_SETTLE_MS = 200
/** A file still being written is looked at again, this many times at most, once it is quiet. */
const WATCH_SETTLE_TRIES = 25

/**
 * --watch. Folders are watched, not the file: editors, `sed -i` and ConfigMap updates replace the
 * file (a new inode, or a swapped symlink) and a watch on the file stays on the one replaced. The
 * config's folder is watched, and, when the path is a symlink into another folder, the target's
 * folder too (re-resolved at every look, so a swapped link is followed). Any change there leads
 * to a look at the file; it is reloaded when it is another file than last time (device, inode) or
 * its size or modification time changed, and once it has been quiet for WATCH_SETTLE_MS (a file
 * written in several chunks is not read half-written).
 */
function watchConfig(path: string, reload: () => Promise<boolean>, logs: Logs): void {
  const identity = (s: Stats | undefined) => (s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}` : undefined)
  let seen = identity(statSync(path, { throwIfNoEntry: false }))
  let timer: NodeJS.Timeout | undefined
  const watchers = new Map<string, FSWatcher>()
  const schedule = (fn: () => void) => (timer ??= setTimeout(fn, WATCH_SETTLE_MS))
  // Not reset by later events: a folder that changes all the time (a log file in it) still gets looked at.
  const onEvent = () => schedule(() => void look(0))
  function follow(): void {
    let target = path
    try {
      target = realpathSync(path)
    } catch {
      // Missing for a moment: keep what is watched.
    }
    const wanted = new Set([dirname(path), dirname(target)])
    for (const [dir, w] of watchers) {
      if (!wanted.has(dir)) {
        w.close()
        watchers.delete(dir)
      }
    }
    for (const dir of wanted) {
      if (watchers.has(dir)) continue
      try {
        const w = watch(dir, onEvent)
        w.on('error', (err) => logs.logger.error({ err, dir }, 'watching the config folder stopped; SIGHUP still reloads'))
        w.unref()
        watchers.set(dir, w)
      } catch (err) {
        logs.logger.error({ err, dir }, 'cannot watch the config folder; SIGHUP still reloads')
      }
    }
  }
  async function look(tries: number): Promise<void> {
    // Cleared first: a change during the stat gets a look of its own.
    timer = undefined
    follow()
    const stats = await stat(path).catch(() => undefined)
    const now = identity(stats)
    // Missing for a moment (between unlink and rename): its return is another change.
    if (now === undefined || now === seen) return
    // Modified within the settle time: maybe still being written; look again once it is quiet.
    if (tries < WATCH_SETTLE_TRIES && Date.now() - stats!.mtimeMs < WATCH_SETTLE_MS) {
      schedule(() => void look(tries + 1))
      return
    }
    seen = now
    void reload()
  }
  follow()
}

/**
 * For an error thrown while loading (not a finding the loader reports): its message may quote the
 * file, secrets included, so only the kind of error is named.
 */
function unexpectedLoadFailure(err: unknown): string {
  const e = (err ?? {}) as Partial<NodeJS.ErrnoException>
  const kind = `${typeof e.name === 'string' ? e.name : 'Error'}${typeof e.code === 'string' ? ` ${e.code}` : ''}`
  return `the config could not be loaded (${kind})`
}

/** What a reload works with: the file, the running listeners and logs, and the config started with. */
interface ReloadContext {
  readonly path: string
  readonly listeners: Listeners
  readonly logs: Logs
  readonly deps: { now: () => number; events: Logs['events']; logger: Logs['logger'] }
  readonly onDone: (ctx: RequestContext) => void
  /** The config the process started with: settings only a restart applies are compared with it. */
  readonly initial: Config
  readonly metrics: Metrics
  /** True once shutdown began: a pipeline built by then would never be closed. */
  readonly stopping: () => boolean
}

/**
 * doReload, but never rejects: whatever fails in a reload (the loader included), the running config
 * keeps serving and the failure is reported as config.rejected. A signal handler or a file watcher
 * calls this; an unhandled rejection there would end the process.
 */
async function safeReload(rc: ReloadContext): Promise<boolean> {
  const { path, logs } = rc
  try {
    return await doReload(rc)
  } catch (err) {
    const message = `${unexpectedLoadFailure(err)}; still serving the previous config`
    logs.events.emit({ type: 'config.rejected', time: new Date().toISOString(), file: path, errors: [{ message }] })
    const stack = (err as Error | undefined)?.stack
    logs.logger.error({ at: typeof stack === 'string' ? stack.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('at ')).slice(0, 5) : undefined }, `config reload failed: ${message}`)
    return false
  }
}

async function doReload({ path, listeners, logs, deps, onDone, initial, metrics, stopping }: ReloadContext): Promise<boolean> {
  const result = await loadConfigFile(path)
  if (!result.ok) {
    // The running config keeps serving; the reasons are logged for the operator.
    logs.events.emit({
      type: 'config.rejected',
      time: new Date().toISOString(),
      file: path,
      errors: result.errors.map((e) => ({ line: e.line, path: e.path, message: e.message, rule: e.rule })),
    })
    logs.logger.error(`config reload rejected; still serving the previous config\n${formatIssues(result.errors)}`)
    return false
  }
  const next = result.config
  const restartOnly = RESTART_ONLY.filter(([name, of]) => JSON.stringify(of(next)) !== JSON.stringify(of(initial))).map(([name]) => name)
  if (restartOnly.length > 0) logs.logger.warn({ fields: restartOnly }, `${restartOnly.join(', ')} changes take effect on restart only`)
  // Same limit-store settings: the new pipeline takes over the running store, so rate and quota
  // counters survive the reload instead of starting from zero.
  const current = listeners.current()
  const sameStore = JSON.stringify(current.config.limits.store) === JSON.stringify(next.limits.store)
  let gateway: Gateway
  try {
    gateway = createGateway(next, deps, { onDone, metrics, previous: current, limitStore: sameStore ? current.limitStore : undefined })
  } catch (err) {
    // A config that validates but cannot be built (e.g. a key that will not import) is rejected too.
    logs.events.emit({ type: 'config.rejected', time: new Date().toISOString(), file: path, errors: [{ message: (err as Error).message }] })
    logs.logger.error({ err }, 'config reload rejected; still serving the previous config')
    return false
  }
  // Dropped before it served: the limit store it shares stays with the running gateway.
  const discard = () => {
    if (sameStore) gateway.releaseLimitStore()
    void gateway.close()
  }
  try {
    await Promise.race([gateway.start(), new Promise((r) => setTimeout(r, READY_WAIT_MS).unref())])
  } catch (err) {
    discard()
    throw err
  }
  if (stopping()) {
    // Shutdown began while the new pipeline waited for its keys: the running one is being closed
    // with the listeners, so this one is dropped rather than swapped in and never closed.
    discard()
    logs.logger.info('reload abandoned: the gateway is stopping')
    return false
  }
  if (sameStore) current.releaseLimitStore()
  listeners.updateTls(next.listeners)
  const prev = listeners.swap(gateway)
  logs.events.emit({ type: 'config.loaded', time: new Date().toISOString(), file: path, routes: next.routes.length, issuers: next.issuers.length, reload: true })
  // Requests already running on the previous gateway finish there; close it once they had time.
  setTimeout(() => void prev.close(), next.server.drainTimeoutMs).unref()
  return true
}
