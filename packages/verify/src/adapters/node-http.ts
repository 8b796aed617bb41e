import type { IncomingMessage, ServerResponse } from 'node:http'
import { authenticateRequest, problemResponse, scopesOption, type RequestLike } from '../lib/http.js'
import type { Identity, Verifier } from '../types.js'
import { isVerifyError, type VerifyError } from '../verify-error.js'

export type { RequestLike } from '../lib/http.js'

/** Options of the node:http adapter. */
export interface NodeHttpOptions {
  /** Scopes every request must hold (all of them); 403 insufficient_scope otherwise. */
  readonly scopes?: readonly string[]
  /** Realm of the challenges; default the verifier's. */
  readonly realm?: string
  /**
   * Called with any error of the handler that is not a VerifyError, after the 500 went out.
   * Default: console.error. The client never sees the error's message.
   */
  readonly onError?: (err: unknown, req: IncomingMessage) => void
}

/**
 * Authenticates a node:http request: exactly one `Authorization: Bearer` header (a token in the
 * query string or two Authorization headers are refused, as at the gateway), verified, with the
 * required scopes. Rejects with {@link VerifyError}; answer it with {@link sendProblem}.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http'
 * import { isVerifyError } from '@portcullis/verify'
 * import { authenticate, sendProblem } from '@portcullis/verify/node-http'
 *
 * createServer(async (req, res) => {
 *   try {
 *     const identity = await authenticate(verifier, req, { scopes: ['orders:read'] })
 *     res.end(`hello ${identity.subject}`)
 *   } catch (err) {
 *     if (isVerifyError(err)) sendProblem(res, err)
 *     else throw err
 *   }
 * }).listen(3000)
 * ```
 */
export function authenticate(verifier: Verifier, req: RequestLike, options: { readonly scopes?: readonly string[] } = {}): Promise<Identity> {
  return authenticateRequest(verifier, req, options.scopes)
}

/**
 * Writes a VerifyError as RFC 9457 `application/problem+json`, with its status and its RFC 6750
 * `WWW-Authenticate` challenge (and `Retry-After` for ERR_AUTHN_IDP_UNAVAILABLE).
 *
 * @example
 * ```ts
 * sendProblem(res, new VerifyError('ERR_AUTHN_MISSING'), { realm: 'orders' })
 * // 401, WWW-Authenticate: Bearer realm="orders"
 * ```
 */
export function sendProblem(res: ServerResponse, err: VerifyError, options: { readonly realm?: string } = {}): void {
  const p = problemResponse(err, options.realm ?? err.realm)
  res.writeHead(p.status, p.headers).end(p.body)
}

/** A request handler that runs only for authenticated requests. */
export type AuthenticatedHandler = (req: IncomingMessage, res: ServerResponse, identity: Identity) => unknown

/**
 * Wraps a node:http handler: the handler runs with the verified identity, or the request is
 * answered 400/401/403/503 with problem+json and an RFC 6750 challenge. A VerifyError the handler
 * throws itself (say from requireScopes) is answered the same way; any other error gets a bare
 * 500, never its message.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http'
 * import { createVerifier } from '@portcullis/verify'
 * import { withVerifier } from '@portcullis/verify/node-http'
 *
 * const verifier = createVerifier({ issuer, audience: 'api://orders', jwksUri })
 * createServer(
 *   withVerifier(verifier, (req, res, identity) => {
 *     res.setHeader('content-type', 'application/json')
 *     res.end(JSON.stringify({ subject: identity.subject }))
 *   }, { scopes: ['orders:read'] }),
 * ).listen(3000)
 * ```
 */
export function withVerifier(
  verifier: Verifier,
  handler: AuthenticatedHandler,
  options: NodeHttpOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const scopes = scopesOption(options.scopes)
  const realm = options.realm ?? verifier.realm
  const onError = options.onError ?? ((err: unknown) => console.error(err))
  return async function portcullisVerified(req, res) {
    try {
      const identity = await authenticateRequest(verifier, req, scopes)
      await handler(req, res, identity)
    } catch (err) {
      const verifyError = isVerifyError(err)
      if (res.headersSent) res.destroy()
      else if (verifyError) sendProblem(res, err, { realm })
      else {
        res.writeHead(500, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
        res.end(JSON.stringify({ title: 'Internal error', status: 500 }))
      }
      if (!verifyError) onError(err, req)
    }
  }
}
