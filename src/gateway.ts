import { routeId } from './config/route-pattern.js'
import { catalog } from './errors/catalog.js'
import type { DenialEventType } from './events/event.js'
import type { Config } from './config/schema.js'
import { createClientAddressResolver, type ClientAddressResolver } from './http/client-address.js'
import { createAuthnStage } from './pipeline/authn/index.js'
import type { KeyStore } from './pipeline/authn/key-store.js'
import { createAuthzStage } from './pipeline/authz/index.js'
import { createForwardStage } from './pipeline/forward/index.js'
import { createNormalizeStage } from './pipeline/normalize/index.js'
import { createLimits, type LimitStore } from './pipeline/limits/index.js'
import { accountFromClaims } from './pipeline/limits/claimed-id.js'
import type { Metrics } from './metrics/metrics.js'
import { STAGE_ORDER, type StageSlot } from './pipeline/order.js'
import { createRouteStage } from './pipeline/route/index.js'
import { createPipeline, type Pipeline } from './pipeline/run.js'
import { createSanitizeStage } from './pipeline/sanitize/index.js'
import type { Deps, RequestContext, Stage } from './pipeline/stage.js'
import { createInternalTokens, type JwksEndpoint } from './tokens/index.js'

/**
 * A request the listener refuses before the pipeline: node's HTTP parser refused it (it never
 * became a request), or it asks for what a gateway does not do (CONNECT tunnels, an Expect other
 * than 100-continue).
 */
export interface ParserRefusal {
  readonly code: 'ERR_HTTP_BAD_REQUEST' | 'ERR_HTTP_REQUEST_TIMEOUT' | 'ERR_HTTP_HEADERS_TOO_LARGE' | 'ERR_HTTP_EXPECTATION_FAILED' | 'ERR_HTTP_METHOD_NOT_SUPPORTED'
  /** The id the answer carries (a new one: the request's own X-Request-Id is not trusted here). */
  readonly requestId: string
  /** The connection's peer address (no X-Forwarded-For was read either). */
  readonly peerIp: string
  /** The parser's error, e.g. "invalid_header_token" for llhttp's HPE_INVALID_HEADER_TOKEN, or "connect", "expect". */
  readonly reason: string
}

/** One loaded configuration, built into a pipeline. A reload builds a new one and swaps it in. */
export interface Gateway {
  readonly config: Config
  readonly pipeline: Pipeline
  readonly resolveClient: ClientAddressResolver
  /** Loads keys; resolves when every issuer's first load settled (success or failure). */
  start(): Promise<void>
  /** An issuer's key store (by config id), which the next config's gateway takes over on reload. */
  keyStore(issuerId: string): KeyStore | undefined
  /** True when every issuer has keys and upstreams are configured. */
  ready(): boolean
  /** The gateway's public signing keys (internalTokens.jwksPath), answered by the listeners; undefined without internalTokens. */
  readonly jwks: JwksEndpoint | undefined
  /** The limit store (memory or Redis) this gateway's limits stages use. */
  readonly limitStore: LimitStore
  /** Records a request the HTTP parser refused: a denial metric and a sampled security event. */
  parserRefused(r: ParserRefusal): void
  /** Records a TLS handshake a listener refused (old version, no shared cipher, a client certificate refused): a sampled event. */
  tlsHandshakeFailed(r: { readonly reason: string; readonly peerIp: string }): void
  /** Records an HTTP/2 connection node ended for the client's abuse of the protocol (a flood, a protocol error): a sampled event. */
  http2SessionFailed(r: { readonly reason: string; readonly peerIp: string }): void
  /**
   * Called once the next gateway (a reload with the same store settings) has taken over the limit
   * store, so counters and quotas survive the reload; this gateway will then not close it.
   */
  releaseLimitStore(): void
  close(): Promise<void>
}

export interface GatewayOptions {
  readonly onDone?: (ctx: RequestContext) => void
  /** Process-wide metrics (kept across reloads). */
  readonly metrics?: Metrics
  /** The running gateway on a reload: issuers fetching their keys from the same place start with its keys. */
  readonly previous?: Pick<Gateway, 'keyStore'>
  /** Limit store taken over from the previous gateway (see handOverLimitStore). */
  readonly limitStore?: LimitStore
}

/** The composition root: builds each stage from config, in the order of order.ts. */
export function createGateway(config: Config, deps: Deps, options: GatewayOptions = {}): Gateway {
  // Keys are imported here, once per loaded config: a reload (SIGHUP) picks up a rotated key set.
  // First, so that a key set that cannot be used rejects the config before anything is opened.
  const internalTokens = createInternalTokens(config, deps)
  const resolveClient = createClientAddressResolver(config.server.trustedProxies)
  const authn = createAuthnStage(config, deps, { previousKeys: options.previous?.keyStore })
  const metrics = options.metrics
  const forward = createForwardStage(config, deps, {
    upstreamAuthorization: internalTokens?.upstreamAuthorization,
    tunnelOpened: metrics && (() => metrics.websocketTunnels.inc()),
    tunnelClosed:
      metrics &&
      ((reason) => {
        metrics.websocketTunnels.dec()
        metrics.websocketClosed.inc({ reason })
      }),
    targetHealth: metrics && ((change) => metrics.upstreamTargetHealthy.set({ upstream: change.upstream, target: change.target }, change.healthy ? 1 : 0)),
  })
  const routeLimits = new Map(config.routes.map((r, i) => [routeId(r, i), r.limits ?? []] as const))
  const limits = createLimits(
    config.limits,
    routeLimits,
    {
      now: deps.now,
      onStoreEvent: (e) => {
        deps.events.emit({ time: new Date(deps.now()).toISOString(), ...e })
        options.metrics?.limitStoreEvents.inc({ event: e.type })
      },
      onLockout: (e) => {
        deps.events.emit({ time: new Date(deps.now()).toISOString(), ...e })
        options.metrics?.lockouts.inc({ target: e.target })
      },
      knownToken: (ctx) => authn.knownToken(ctx),
      claimedAccount: (ctx) => accountFromClaims(authn.presentedClaims(ctx)),
    },
    options.limitStore,
  )
  let ownsLimitStore = true
  const bySlot: Record<StageSlot, Stage> = {
    normalize: createNormalizeStage(config, deps),
    route: createRouteStage(config),
    sanitize: createSanitizeStage(config, deps, resolveClient),
    'limits:beforeAuthn': limits.beforeAuthn,
    authn,
    'limits:afterAuthn': limits.afterAuthn,
    authz: createAuthzStage(),
    forward,
  }
  const stages = STAGE_ORDER.map((slot) => bySlot[slot])
  const pipeline = createPipeline(stages, deps, {
    realm: config.server.realm,
    onDone: options.onDone,
    onDenied(ctx, code) {
      options.metrics?.denials.inc({ code })
      // Brute-force protection counts authentication failures per address and claimed account.
      void limits.bruteForce.onDenied(ctx, code)
    },
    sampleEvent(ctx, code) {
      // A flood of 429s must not flood the log: limits.exceeded events are sampled per address.
      if (code === 'ERR_LIMITS_EXCEEDED') return limits.sampler.sample(ctx.clientIp, deps.now())
      // A request the listener interrupted (its body broken or late) is sampled as the parser's refusals are.
      return code.startsWith('ERR_HTTP_') ? limits.sampler.sample(`${code} ${ctx.clientIp}`, deps.now()) : 0
    },
  })
  /** A sampled event for a connection the gateway refused or ended (no request, so no request id or route). */
  function connectionRefused(type: 'tls.handshake_failed' | 'http2.session_error', kind: string, r: { readonly reason: string; readonly peerIp: string }): void {
    const clientIp = resolveClient(r.peerIp, undefined)
    const suppressed = limits.sampler.sample(`${kind} ${clientIp}`, deps.now())
    if (suppressed < 0) return
    deps.events.emit({ type, time: new Date(deps.now()).toISOString(), clientIp, reason: r.reason, ...(suppressed > 0 ? { suppressed } : undefined) })
  }

  return {
    config,
    pipeline,
    resolveClient,
    async start() {
      await Promise.all([authn.start(), limits.ready()])
    },
    ready: () => config.upstreams.length > 0 && authn.ready(),
    keyStore: authn.keyStore,
    jwks: internalTokens?.jwks,
    limitStore: limits.store,
    parserRefused(r) {
      options.metrics?.denials.inc({ code: r.code })
      const clientIp = resolveClient(r.peerIp, undefined)
      // Malformed requests are what smuggling attempts and scanners send, so they are recorded; a
      // flood of them must not flood the log, so their events are sampled per address, as
      // limits.exceeded events are (under keys of their own, one per kind of refusal).
      const suppressed = limits.sampler.sample(`${r.code} ${clientIp}`, deps.now())
      if (suppressed < 0) return
      const entry = catalog[r.code]
      deps.events.emit({
        type: entry.event as DenialEventType,
        time: new Date(deps.now()).toISOString(),
        requestId: r.requestId,
        traceId: '',
        clientIp,
        method: '',
        path: '',
        route: undefined,
        decision: 'deny',
        code: r.code,
        status: entry.status,
        reason: r.reason,
        subject: undefined,
        clientId: undefined,
        issuer: undefined,
        jti: undefined,
        tokenDigest: undefined,
        ...(suppressed > 0 ? { suppressed } : undefined),
      })
    },
    // What scanners, clients with outdated TLS stacks and HTTP/2 abusers produce: sampled per
    // address like the parser's refusals, so a flood of them cannot flood the log (the metric
    // counts every one).
    tlsHandshakeFailed(r) {
      options.metrics?.tlsHandshakeFailures.inc({ reason: r.reason })
      connectionRefused('tls.handshake_failed', 'tls', r)
    },
    http2SessionFailed(r) {
      options.metrics?.http2SessionErrors.inc({ reason: r.reason })
      connectionRefused('http2.session_error', 'http2', r)
    },
    releaseLimitStore() {
      ownsLimitStore = false
    },
    async close() {
      await Promise.allSettled([...stages.map((s) => s.close?.()), ownsLimitStore ? limits.close() : undefined])
    },
  }
}
