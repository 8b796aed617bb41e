/**
 * Every error the gateway can answer with, in one table. A code always maps to the same status,
 * title, RFC 6750 challenge and security-event type, so one grep finds the throw, the response and
 * the event. docs/errors.md mirrors this table; a test keeps the two in step.
 */
export type Challenge = 'none' | 'bearer' | 'invalid_request' | 'invalid_token' | 'insufficient_scope'

export interface CatalogEntry {
  readonly status: number
  readonly title: string
  /** RFC 6750 §3 WWW-Authenticate challenge to send with the response. */
  readonly challenge: Challenge
  /** Security event type emitted when a request ends with this code. */
  readonly event: string
  /**
   * Whether this denial is an authentication failure. Brute-force protection counts those that can
   * be guesses: not ERR_AUTHN_MISSING (no credential) nor ERR_AUTHN_EXPIRED (a genuine token that
   * aged), see limits/brute-force.ts.
   */
  readonly authFailure?: boolean
}

export const catalog = {
  ERR_NORMALIZE_REJECTED: { status: 400, title: 'Request path rejected', challenge: 'none', event: 'normalize.rejected' },
  ERR_ROUTE_NOT_FOUND: { status: 404, title: 'No route matches this request', challenge: 'none', event: 'route.not_found' },
  ERR_ROUTE_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed on this route', challenge: 'none', event: 'route.method_not_allowed' },
  ERR_ROUTE_WEBSOCKET_NOT_ALLOWED: { status: 400, title: 'WebSocket not allowed on this route', challenge: 'none', event: 'route.websocket_not_allowed' },
  ERR_ROUTE_CORS_REJECTED: { status: 403, title: 'Cross-origin request not allowed', challenge: 'none', event: 'route.cors_rejected' },
  ERR_AUTHN_MISSING: { status: 401, title: 'Authentication required', challenge: 'bearer', event: 'authn.missing', authFailure: true },
  ERR_AUTHN_MALFORMED: { status: 400, title: 'Malformed credentials', challenge: 'invalid_request', event: 'authn.malformed', authFailure: true },
  ERR_AUTHN_INVALID_TOKEN: { status: 401, title: 'Invalid access token', challenge: 'invalid_token', event: 'authn.invalid_token', authFailure: true },
  ERR_AUTHN_EXPIRED: { status: 401, title: 'Access token expired', challenge: 'invalid_token', event: 'authn.expired', authFailure: true },
  // 403, not 401: HTTP has no challenge for a TLS client certificate, and a 401 must carry one (RFC 9110 §15.5.2).
  ERR_AUTHN_CERTIFICATE_REQUIRED: { status: 403, title: 'Client certificate required', challenge: 'none', event: 'authn.certificate_required' },
  ERR_AUTHN_IDP_UNAVAILABLE: { status: 503, title: 'Identity provider keys unavailable', challenge: 'none', event: 'authn.idp_unavailable' },
  ERR_AUTHZ_INSUFFICIENT_SCOPE: { status: 403, title: 'Insufficient scope', challenge: 'insufficient_scope', event: 'authz.insufficient_scope' },
  ERR_AUTHZ_CERTIFICATE_NOT_ALLOWED: { status: 403, title: 'Client certificate not allowed', challenge: 'none', event: 'authz.certificate_not_allowed' },
  ERR_SANITIZE_TOO_LARGE: { status: 413, title: 'Request too large', challenge: 'none', event: 'sanitize.too_large' },
  ERR_SANITIZE_REJECTED: { status: 400, title: 'Request rejected', challenge: 'none', event: 'sanitize.rejected' },
  ERR_FORWARD_UNAVAILABLE: { status: 502, title: 'Upstream unavailable', challenge: 'none', event: 'forward.unavailable' },
  ERR_FORWARD_TIMEOUT: { status: 504, title: 'Upstream timed out', challenge: 'none', event: 'forward.timeout' },
  ERR_GATEWAY_DRAINING: { status: 503, title: 'Gateway is shutting down', challenge: 'none', event: 'gateway.draining' },
  ERR_INTERNAL: { status: 500, title: 'Internal error', challenge: 'none', event: 'internal' },
  ERR_LIMITS_EXCEEDED: { status: 429, title: 'Too many requests', challenge: 'none', event: 'limits.exceeded' },
  ERR_LIMITS_UNAVAILABLE: { status: 503, title: 'Rate limiting unavailable', challenge: 'none', event: 'limits.unavailable' },
  // Answered by the listener when node's HTTP parser refuses a request (src/http/server.ts).
  ERR_HTTP_BAD_REQUEST: { status: 400, title: 'Malformed HTTP request', challenge: 'none', event: 'http.bad_request' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, title: 'Request not received in time', challenge: 'none', event: 'http.request_timeout' },
  ERR_HTTP_HEADERS_TOO_LARGE: { status: 431, title: 'Request header fields too large', challenge: 'none', event: 'http.headers_too_large' },
  ERR_HTTP_EXPECTATION_FAILED: { status: 417, title: 'Expectation not supported', challenge: 'none', event: 'http.expectation_failed' },
  ERR_HTTP_METHOD_NOT_SUPPORTED: { status: 501, title: 'Method not supported by the gateway', challenge: 'none', event: 'http.method_not_supported' },
} as const satisfies Record<string, CatalogEntry>

export type ErrorCode = keyof typeof catalog

/** Stable documentation URI for a code: one anchor per code in docs/errors.md. */
export function typeUri(code: ErrorCode): string {
  return `https://portcullis.dev/errors#${code.toLowerCase().replace(/_/g, '-')}`
}
