import { Agent, request, type BalancedPool, type Pool } from 'undici'
import { grpcHealthProbe } from './grpc-health.js'
import type { UpstreamConfig } from '../../config/schema.js'

export interface HealthChange {
  readonly upstream: string
  /** The target's origin (scheme://host:port). */
  readonly target: string
  readonly healthy: boolean
  /** Why a probe failed (`status_503`, `timeout`, an error code), for an unhealthy target. */
  readonly reason?: string
}

export interface HealthMonitor {
  close(): Promise<void>
}

/**
 * Active health checks of one upstream's targets (`upstreams[].healthCheck`). Each target's
 * `path` is probed every `intervalMs` on connections of its own (not the request pool's, so a
 * probe never waits behind requests nor takes a request's place); `unhealthyAfter` failures in a
 * row take the target out of the BalancedPool, `healthyAfter` successes put it back. When no
 * target is healthy, every target takes requests again: a probe can be wrong, and refusing every
 * request would be sure to be. undici has the pool's weights but no active checks, hence this.
 */
export function monitorHealth(
  u: UpstreamConfig,
  origins: readonly string[],
  pool: Pool | BalancedPool,
  connect: Record<string, unknown> | undefined,
  onChange: (change: HealthChange) => void,
): HealthMonitor {
  const check = u.healthCheck!
  // Probes speak the protocol requests do (the connect options say h2c; ALPN is offered here): an
  // h2c-only upstream, a gRPC server, answers no HTTP/1.1.
  const agent = new Agent({ connections: 1, ...(connect === undefined ? {} : { connect }), connectTimeout: check.timeoutMs, ...(u.http2 ? { allowH2: true } : {}) })
  const state = origins.map((origin) => ({ origin, healthy: true, fails: 0, goods: 0, probing: false }))
  const balanced = 'addUpstream' in pool ? pool : undefined
  let closed = false

  /** The pool serves the healthy targets, or every target when none is. */
  function reconcile(): void {
    if (balanced === undefined) return
    const healthy = state.filter((t) => t.healthy).map((t) => t.origin)
    const wanted = new Set(healthy.length > 0 ? healthy : origins)
    const serving = new Set(balanced.upstreams)
    for (const origin of wanted) if (!serving.has(origin)) balanced.addUpstream(origin)
    for (const origin of serving) if (!wanted.has(origin)) balanced.removeUpstream(origin)
  }

  async function probe(t: (typeof state)[number]): Promise<void> {
    t.probing = true
    let failure: string | undefined
    try {
      if (check.grpcService !== undefined) failure = await grpcHealthProbe(agent, t.origin, check.grpcService, check.timeoutMs)
      else {
        const res = await request(t.origin + check.path, {
          dispatcher: agent,
          method: 'GET',
          headersTimeout: check.timeoutMs,
          bodyTimeout: check.timeoutMs,
          signal: AbortSignal.timeout(check.timeoutMs),
        })
        await res.body.dump()
        if (res.statusCode < 200 || res.statusCode > 299) failure = `status_${res.statusCode}`
      }
    } catch (err) {
      const code = (err as { code?: unknown; name?: unknown }).code ?? (err as { name?: unknown }).name
      failure = typeof code === 'string' && /^[A-Za-z0-9_]{1,48}$/.test(code) ? (code === 'TimeoutError' ? 'timeout' : code) : 'error'
    } finally {
      t.probing = false
    }
    if (closed) return
    if (failure === undefined) {
      t.fails = 0
      t.goods++
      if (!t.healthy && t.goods >= check.healthyAfter) {
        t.healthy = true
        reconcile()
        onChange({ upstream: u.id, target: t.origin, healthy: true })
      }
    } else {
      t.goods = 0
      t.fails++
      if (t.healthy && t.fails >= check.unhealthyAfter) {
        t.healthy = false
        reconcile()
        onChange({ upstream: u.id, target: t.origin, healthy: false, reason: failure })
      }
    }
  }

  const timer = setInterval(() => {
    for (const t of state) if (!t.probing) void probe(t)
  }, check.intervalMs)
  timer.unref()

  return {
    async close() {
      closed = true
      clearInterval(timer)
      await agent.destroy()
    },
  }
}
