/**
 * The typed catalogue of security events. Denial events mirror the error codes
 * (ERR_AUTHN_EXPIRED ↔ authn.expired); lifecycle events describe the gateway itself.
 * No event ever carries a token, key or secret: tokens appear as a digest or their jti.
 */
export type DenialEventType =
  | 'normalize.rejected'
  | 'route.not_found'
  | 'route.method_not_allowed'
  | 'route.websocket_not_allowed'
  | 'route.cors_rejected'
  | 'authn.missing'
  | 'authn.malformed'
  | 'authn.invalid_token'
  | 'authn.expired'
  | 'authn.idp_unavailable'
  | 'authn.certificate_required'
  | 'authz.insufficient_scope'
  | 'authz.certificate_not_allowed'
  | 'sanitize.too_large'
  | 'sanitize.rejected'
  | 'forward.unavailable'
  | 'forward.timeout'
  | 'gateway.draining'
  | 'internal'
  | 'limits.exceeded'
  | 'limits.unavailable'
  | 'http.bad_request'
  | 'http.request_timeout'
  | 'http.headers_too_large'
  | 'http.expectation_failed'
  | 'http.method_not_supported'

export type LifecycleEventType =
  | 'config.loaded'
  | 'config.rejected'
  | 'gateway.started'
  | 'gateway.stopping'
  | 'gateway.stopped'
  | 'keys.refreshed'
  | 'keys.refresh_failed'
  | 'limits.store_unavailable'
  | 'limits.store_recovered'
  | 'limits.lockout'
  | 'tls.handshake_failed'
  | 'http2.session_error'
  | 'websocket.closed'
  | 'upstream.unhealthy'
  | 'upstream.healthy'

export interface RequestEvent {
  readonly type: DenialEventType
  readonly time: string
  readonly requestId: string
  readonly traceId: string
  readonly clientIp: string
  readonly method: string
  readonly path: string
  readonly route: string | undefined
  readonly decision: 'deny' | 'error'
  readonly code: string
  readonly status: number
  /** Machine-readable reason (e.g. "bad_signature", "alg_not_allowed"). */
  readonly reason: string | undefined
  readonly subject: string | undefined
  readonly clientId: string | undefined
  readonly issuer: string | undefined
  readonly jti: string | undefined
  readonly tokenDigest: string | undefined
  /** On an `auth: certificate` route: the thumbprint (`x5t#S256`) of the client certificate presented, verified or not. */
  readonly certificate?: string
  /** For sampled event types: how many events of this kind were suppressed since the last one. */
  readonly suppressed?: number
}

export interface LifecycleEvent {
  readonly type: LifecycleEventType
  readonly time: string
  readonly [field: string]: unknown
}

export type SecurityEvent = RequestEvent | LifecycleEvent

/** Where events go. emit() never throws and never blocks a request. */
export interface EventSink {
  emit(event: SecurityEvent): void
  flush(): Promise<void>
}
