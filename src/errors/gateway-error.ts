import { catalog, type ErrorCode } from './catalog.js'

export interface GatewayErrorOptions {
  /** Safe, client-visible text. Never token material, claims or upstream bodies. */
  readonly detail?: string
  /** Internal reason recorded in the security event (never sent to the client). */
  readonly reason?: string
  /** For insufficient_scope: the scope(s) the route requires (RFC 6750 §3 `scope`). */
  readonly scope?: string
  /** Extra response headers (e.g. Allow, Retry-After). */
  readonly headers?: Readonly<Record<string, string>>
  readonly cause?: unknown
}

/**
 * The one error type of the gateway. The HTTP status is not an argument: it comes from the
 * catalog, so a code always means the same response.
 */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly detail: string | undefined
  readonly reason: string | undefined
  readonly scope: string | undefined
  readonly headers: Readonly<Record<string, string>> | undefined

  constructor(code: ErrorCode, options: GatewayErrorOptions = {}) {
    super(catalog[code].title, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.status = catalog[code].status
    this.detail = options.detail
    this.reason = options.reason
    this.scope = options.scope
    this.headers = options.headers
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError
}
