import { catalog, typeUri, type ErrorCode } from './catalog.js'
import type { GatewayError } from './gateway-error.js'

export interface ProblemResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** RFC 7230 quoted-string escaping for auth-param values: backslash-escape `\` and `"`. */
function quote(value: string): string {
  return '"' + value.replace(/[\\"]/g, (c) => '\\' + c).replace(/[\r\n]/g, ' ') + '"'
}

function challenge(code: ErrorCode, realm: string, scope: string | undefined): string | undefined {
  const kind = catalog[code].challenge
  if (kind === 'none') return undefined
  const parts = [`realm=${quote(realm)}`]
  // RFC 6750 §3.1: a request with no credentials gets a challenge with no error code.
  if (kind !== 'bearer') parts.push(`error=${quote(kind)}`)
  if (kind === 'insufficient_scope' && scope) parts.push(`scope=${quote(scope)}`)
  return 'Bearer ' + parts.join(', ')
}

/**
 * GatewayError → RFC 9457 application/problem+json body plus RFC 6750 WWW-Authenticate, and the
 * request id and content length every refusal carries, whoever answers it (runner, listener, JWKS).
 */
export function toProblem(err: GatewayError, requestId: string, realm: string): ProblemResponse {
  const entry = catalog[err.code]
  const body: Record<string, unknown> = {
    type: typeUri(err.code),
    title: entry.title,
    status: entry.status,
    code: err.code,
    instance: `urn:portcullis:request:${requestId}`,
    requestId,
  }
  if (err.detail) body.detail = err.detail
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  }
  const wwwAuth = challenge(err.code, realm, err.scope)
  if (wwwAuth) headers['www-authenticate'] = wwwAuth
  if (err.headers) Object.assign(headers, err.headers)
  const text = JSON.stringify(body)
  headers['x-request-id'] = requestId
  headers['content-length'] = String(Buffer.byteLength(text))
  return { status: entry.status, headers, body: text }
}
