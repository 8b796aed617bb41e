/**
 * The codes a verifier can fail with. They are the gateway's own codes (its error catalogue), so
 * a service behind Portcullis answers a bad token exactly as the gateway would: same `code`, same
 * status, same RFC 6750 challenge.
 */
const CODES = {
  ERR_AUTHN_MISSING: { status: 401, title: 'Authentication required', challenge: 'bearer' },
  ERR_AUTHN_MALFORMED: { status: 400, title: 'Malformed credentials', challenge: 'invalid_request' },
  ERR_AUTHN_INVALID_TOKEN: { status: 401, title: 'Invalid access token', challenge: 'invalid_token' },
  ERR_AUTHN_EXPIRED: { status: 401, title: 'Access token expired', challenge: 'invalid_token' },
  ERR_AUTHN_IDP_UNAVAILABLE: { status: 503, title: 'Identity provider keys unavailable', challenge: 'none' },
  ERR_AUTHZ_INSUFFICIENT_SCOPE: { status: 403, title: 'Insufficient scope', challenge: 'insufficient_scope' },
} as const

/** Every code a {@link VerifyError} can carry. */
export type VerifyErrorCode = keyof typeof CODES

/** The realm of WWW-Authenticate challenges when none is configured (the gateway's default too). */
export const DEFAULT_REALM = 'portcullis'

/** RFC 9457 problem details, as {@link VerifyError.toProblem} returns them. */
export interface ProblemDetails {
  readonly type: string
  readonly title: string
  readonly status: number
  /** The stable error code, e.g. `ERR_AUTHN_EXPIRED`. Clients should branch on this. */
  readonly code: VerifyErrorCode
  readonly detail?: string
  readonly instance?: string
}

export interface VerifyErrorOptions {
  /**
   * Which check failed (`bad_signature`, `wrong_audience`, ...), for your logs. It is never put into
   * the response: telling a forger which check failed would help them.
   */
  readonly reason?: string
  /** Safe, client-visible text. Never token material or claims. */
  readonly detail?: string
  /** For ERR_AUTHZ_INSUFFICIENT_SCOPE: the space-separated scopes required (RFC 6750 §3 `scope`). */
  readonly scope?: string
  /** For ERR_AUTHN_IDP_UNAVAILABLE: seconds after which a retry makes sense (`Retry-After`). */
  readonly retryAfterSec?: number
  /** Realm of the challenge; the verifier sets its own. */
  readonly realm?: string
  readonly cause?: unknown
}

/** RFC 9110 §5.6.4 quoted-string: backslash-escape `\` and `"`; no line breaks in a header. */
function quote(value: string): string {
  return '"' + value.replace(/[\\"]/g, (c) => '\\' + c).replace(/[\r\n]/g, ' ') + '"'
}

/**
 * The one error type of `@portcullis/verify`. The HTTP status is not an argument: it follows from
 * the code, so a code always means the same response.
 *
 * @example
 * ```ts
 * try {
 *   const identity = await verifier.verify(req.headers.authorization)
 * } catch (err) {
 *   if (!(err instanceof VerifyError)) throw err
 *   const challenge = err.wwwAuthenticate()
 *   res.writeHead(err.status, {
 *     'content-type': 'application/problem+json',
 *     ...(challenge && { 'www-authenticate': challenge }),
 *   })
 *   res.end(JSON.stringify(err.toProblem()))
 * }
 * ```
 */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode
  /** 400, 401, 403 or 503. */
  readonly status: number
  readonly reason: string | undefined
  readonly detail: string | undefined
  readonly scope: string | undefined
  readonly retryAfterSec: number | undefined
  readonly realm: string

  constructor(code: VerifyErrorCode, options: VerifyErrorOptions = {}) {
    super(CODES[code].title, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'VerifyError'
    this.code = code
    this.status = CODES[code].status
    this.reason = options.reason
    this.detail = options.detail
    this.scope = options.scope
    this.retryAfterSec = options.retryAfterSec
    this.realm = options.realm ?? DEFAULT_REALM
  }

  /**
   * The RFC 6750 §3 `WWW-Authenticate` value for this error, or undefined when none is due
   * (ERR_AUTHN_IDP_UNAVAILABLE is not the client's fault).
   *
   * - no credentials: `Bearer realm="…"` with no error code (RFC 6750 §3.1);
   * - malformed request: `error="invalid_request"`; bad or expired token: `error="invalid_token"`;
   * - missing scope: `error="insufficient_scope", scope="…"`.
   *
   * @example
   * ```ts
   * new VerifyError('ERR_AUTHN_EXPIRED').wwwAuthenticate('orders')
   * // 'Bearer realm="orders", error="invalid_token"'
   * ```
   */
  wwwAuthenticate(realm: string = this.realm): string | undefined {
    const kind = CODES[this.code].challenge
    if (kind === 'none') return undefined
    const parts = [`realm=${quote(realm)}`]
    if (kind !== 'bearer') parts.push(`error=${quote(kind)}`)
    if (kind === 'insufficient_scope' && this.scope) parts.push(`scope=${quote(this.scope)}`)
    return 'Bearer ' + parts.join(', ')
  }

  /**
   * Every response header this error calls for: `content-type: application/problem+json`,
   * `cache-control: no-store`, and `www-authenticate` / `retry-after` when due.
   *
   * @example
   * ```ts
   * res.writeHead(err.status, err.headers()).end(JSON.stringify(err.toProblem()))
   * ```
   */
  headers(realm: string = this.realm): Record<string, string> {
    const headers: Record<string, string> = {
      'content-type': 'application/problem+json',
      'cache-control': 'no-store',
    }
    const challenge = this.wwwAuthenticate(realm)
    if (challenge !== undefined) headers['www-authenticate'] = challenge
    if (this.retryAfterSec !== undefined) headers['retry-after'] = String(this.retryAfterSec)
    return headers
  }

  /**
   * The RFC 9457 `application/problem+json` body. `type` is the same documentation URI the gateway
   * uses for the code; `reason` is deliberately left out.
   *
   * @example
   * ```ts
   * new VerifyError('ERR_AUTHN_MISSING').toProblem({ instance: 'urn:request:42' })
   * // { type: 'https://portcullis.dev/errors#err-authn-missing', title: 'Authentication required',
   * //   status: 401, code: 'ERR_AUTHN_MISSING', instance: 'urn:request:42' }
   * ```
   */
  toProblem(options: { readonly instance?: string } = {}): ProblemDetails {
    const body: { -readonly [K in keyof ProblemDetails]: ProblemDetails[K] } = {
      type: `https://portcullis.dev/errors#${this.code.toLowerCase().replace(/_/g, '-')}`,
      title: CODES[this.code].title,
      status: this.status,
      code: this.code,
    }
    if (this.detail !== undefined) body.detail = this.detail
    if (options.instance !== undefined) body.instance = options.instance
    return body
  }
}

/**
 * True for a {@link VerifyError}, also one from another copy of this package (two versions
 * installed side by side), recognised by its name and a known code.
 *
 * @example
 * ```ts
 * try {
 *   await verifier.verify(header)
 * } catch (err) {
 *   if (isVerifyError(err) && err.code === 'ERR_AUTHN_EXPIRED') refreshTheToken()
 *   else throw err
 * }
 * ```
 */
export function isVerifyError(value: unknown): value is VerifyError {
  return value instanceof VerifyError || (value instanceof Error && value.name === 'VerifyError' && typeof (value as VerifyError).code === 'string' && (value as VerifyError).code in CODES)
}
