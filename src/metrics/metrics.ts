import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Prometheus metrics (prom-client), one registry per process so counters run on across config
 * reloads. Updated only where something happens anyway (a request ends, a refusal, a store or
 * lockout event): the hot path pays one unlabelled counter increment per request.
 */
export interface Metrics {
  readonly registry: Registry
  readonly requests: Counter
  readonly denials: Counter<'code'>
  readonly limitStoreEvents: Counter<'event'>
  readonly limitStoreUp: Gauge
  readonly lockouts: Counter<'target'>
  readonly tlsHandshakeFailures: Counter<'reason'>
  readonly http2SessionErrors: Counter<'reason'>
  readonly websocketTunnels: Gauge
  readonly websocketClosed: Counter<'reason'>
  readonly upstreamTargetHealthy: Gauge<'upstream' | 'target'>
  /**
   * Where gateway_limits_store_up is read at each scrape: the running gateway's store. A reload
   * may replace the store; a replaced store's last state must not stay on the gauge.
   */
  limitStoreUpFrom(source: () => boolean): void
}

export function createMetrics(): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'portcullis_process_' })
  let storeUp: () => boolean = () => true
  const metrics: Metrics = {
    registry,
    requests: new Counter({ name: 'gateway_requests_total', help: 'Requests handled by the pipeline.', registers: [registry] }),
    denials: new Counter({ name: 'gateway_denials_total', help: 'Requests refused or failed, by error code.', labelNames: ['code'], registers: [registry] }),
    limitStoreEvents: new Counter({
      name: 'gateway_limits_store_events_total',
      help: 'Limit store state changes (limits.store_unavailable, limits.store_recovered).',
      labelNames: ['event'],
      registers: [registry],
    }),
    limitStoreUp: new Gauge({
      name: 'gateway_limits_store_up',
      help: '1 while the shared limit store answers, 0 while it is down.',
      registers: [registry],
      collect() {
        this.set(storeUp() ? 1 : 0)
      },
    }),
    lockouts: new Counter({ name: 'gateway_limits_lockouts_total', help: 'Brute-force lockouts, by target.', labelNames: ['target'], registers: [registry] }),
    tlsHandshakeFailures: new Counter({
      name: 'gateway_tls_handshake_failures_total',
      help: 'TLS handshakes a listener refused, by OpenSSL reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    http2SessionErrors: new Counter({
      name: 'gateway_http2_session_errors_total',
      help: 'HTTP/2 connections ended for the client\'s abuse of the protocol, by reason (flood, protocol_error, bad_preface, …).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    websocketTunnels: new Gauge({ name: 'gateway_websocket_tunnels', help: 'WebSocket tunnels open now.', registers: [registry] }),
    websocketClosed: new Counter({
      name: 'gateway_websocket_closed_total',
      help: 'WebSocket tunnels closed, by the reason of their websocket.closed event.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    upstreamTargetHealthy: new Gauge({
      name: 'gateway_upstream_target_healthy',
      help: 'Health-checked upstream targets: 1 while healthy, 0 while taken out of the rotation (set at the first change).',
      labelNames: ['upstream', 'target'],
      registers: [registry],
    }),
    limitStoreUpFrom(source) {
      storeUp = source
    },
  }
  return metrics
}

/** Serves the registry on its own listener (loopback by default), never on the public one. */
export async function startMetricsListener(
  metrics: Metrics,
  options: { host: string; port: number; path: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== options.path) {
      res.writeHead(404).end()
      return
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => resolve())
  })
  const addr = server.address() as AddressInfo
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}${options.path}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}
