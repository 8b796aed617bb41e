import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Path of the built CLI, as a user runs it. Tests never import from src/. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js')

export interface StartedGateway {
  readonly url: string
  readonly child: ChildProcess
  readonly configPath: string
  /** Every JSON log line the gateway printed on stdout, parsed. */
  readonly lines: Array<Record<string, unknown>>
  /** Security events (lines written by the "security" logger). */
  events(): Array<Record<string, unknown>>
  /** Waits until a log line satisfies the predicate. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  stderr(): string
  /** Whether the process still runs: it neither exited nor was ended by a signal (an abort, say). */
  running(): boolean
  /** Sends SIGTERM and waits for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Minimal valid config pieces, so a test only states what it cares about. */
export function baseConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    listeners: [{ host: '127.0.0.1', port: 0 }],
    logging: { level: 'info', events: 'stdout', access: 'stdout' },
    ...overrides,
  }
}

/**
 * The acknowledgement an HTTP/2 listener (tls.http2, h2c) needs on a Node.js whose nghttp2 predates
 * 1.68.1 (lint rule listener-http2-vulnerable, docs/config.md), as `security`: HTTP/2 listeners are
 * tested there too.
 */
export const HTTP2_LISTENERS_ACKNOWLEDGED = { acknowledge: [{ rule: 'listener-http2-vulnerable', reason: 'a test of HTTP/2 listeners' }] }

export function writeConfig(config: unknown, name = 'portcullis.json'): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'))
  const file = join(dir, name)
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2))
  return file
}

/**
 * Starts the built gateway as a child process on a free port and waits for its "listening" line.
 * With waitReady (default), also waits until /readyz answers 200.
 */
export async function startGateway(
  config: unknown,
  options: { waitReady?: boolean; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<StartedGateway> {
  const configPath = typeof config === 'string' && !config.includes('\n') ? config : writeConfig(config)
  const child = spawn(process.execPath, [CLI, 'start', '--config', configPath, ...(options.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = []
  let err = ''
  let buf = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) !== -1) {
      const raw = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let line: Record<string, unknown>
      try {
        line = JSON.parse(raw) as Record<string, unknown>
      } catch {
        line = { raw }
      }
      lines.push(line)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].pred(line)) {
          waiters[i].resolve(line)
          waiters.splice(i, 1)
        }
      }
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))

  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) => {
    const hit = lines.find(pred)
    if (hit) return Promise.resolve(hit)
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr: ${err}`)), timeoutMs)
      waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) })
      void exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`gateway exited with ${code}; stderr: ${err}`))
      })
    })
  }

  // Never leave a gateway behind: not when the test process exits, not when start-up fails.
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  void exited.then(() => process.off('exit', killOnExit))
  const listening = await waitFor((l) => l.msg === 'listening').catch((err: unknown) => {
    child.kill('SIGKILL')
    throw err
  })
  const url = (listening.urls as string[])[0]
  if (options.waitReady ?? true) {
    const deadline = Date.now() + 10_000
    for (;;) {
      const r = await fetch(url + '/readyz').catch(() => undefined)
      if (r?.status === 200) break
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error('gateway never became ready')
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url,
    child,
    configPath,
    lines,
    events: () => lines.filter((l) => l.name === 'security'),
    waitFor,
    stderr: () => err,
    running: () => child.exitCode === null && child.signalCode === null,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      // A gateway that does not exit within its drain and close bounds is killed, so a broken
      // shutdown fails the test (exit code null) instead of hanging the suite.
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      const code = await exited
      clearTimeout(killer)
      return code
    },
  }
}
