import { spawn, type ChildProcess } from 'node:child_process'

/**
 * A server running in its own process, so it never shares an event loop with the load generator
 * (autocannon runs in the bench parent). Children announce themselves with one JSON line on stdout
 * carrying the listening URL; everything after that is drained and the tail kept for diagnostics.
 */
export interface ChildServer {
  readonly url: string
  readonly pid: number | undefined
  /** Last lines the child printed (stdout and stderr), for error reports. */
  tail(): string
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  stop(): Promise<void>
}

const TAIL_LINES = 40
const START_TIMEOUT_MS = 15_000
const STOP_GRACE_MS = 5_000

/**
 * Spawns `node <args>` and resolves once a stdout line satisfies `urlOf` (which returns the URL or
 * undefined). Rejects with the child's output if it exits or stays silent for too long.
 */
export function spawnServer(
  args: readonly string[],
  urlOf: (line: Record<string, unknown>) => string | undefined,
  env: NodeJS.ProcessEnv = {},
  /** wrapper: a command node runs under (e.g. valgrind and its flags); startTimeoutMs: a slower start. */
  options: { readonly wrapper?: readonly string[]; readonly startTimeoutMs?: number } = {},
): Promise<ChildServer> {
  const [command, ...prefix] = options.wrapper?.length ? [...options.wrapper, process.execPath] : [process.execPath]
  const startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS
  const child: ChildProcess = spawn(command, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  const tail: string[] = []
  const keep = (line: string) => {
    tail.push(line)
    if (tail.length > TAIL_LINES) tail.shift()
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  return new Promise<ChildServer>((resolve, reject) => {
    let found = false
    const timer = setTimeout(() => fail(`no listening line after ${startTimeoutMs} ms`), startTimeoutMs)
    const fail = (why: string) => {
      if (found) return
      found = true
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`${args.join(' ')}: ${why}\n${tail.join('\n')}`))
    }
    child.once('exit', (code, signal) => fail(`exited early (code ${code}, signal ${signal})`))
    child.once('error', (err) => fail(err.message))
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => chunk.split('\n').filter(Boolean).forEach(keep))
    let buf = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk
      let nl: number
      while ((nl = buf.indexOf('\n')) !== -1) {
        const raw = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        keep(raw)
        if (found) continue
        let url: string | undefined
        try {
          url = urlOf(JSON.parse(raw) as Record<string, unknown>)
        } catch {
          url = undefined
        }
        if (url) {
          found = true
          clearTimeout(timer)
          resolve({
            url,
            pid: child.pid,
            tail: () => tail.join('\n'),
            async stop() {
              if (child.exitCode !== null || child.signalCode !== null) return
              child.kill('SIGTERM')
              const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
              await exited
              clearTimeout(killer)
            },
          })
        }
      }
    })
  })
}

/** Polls `url` until it answers 200 (e.g. the gateway's /readyz once keys are loaded). */
export async function waitFor200(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await fetch(url).then((r) => (void r.body?.cancel(), r.status), () => 0)
    if (status === 200) return
    if (Date.now() > deadline) throw new Error(`${url} never answered 200 (last status ${status})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
