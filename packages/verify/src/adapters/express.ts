import { authenticateRequest, problemResponse, scopesOption, type RequestLike } from '../lib/http.js'
import { requireScopes } from '../require-scopes.js'
import type { Identity, Verifier } from '../types.js'
import { DEFAULT_REALM, isVerifyError, VerifyError } from '../verify-error.js'

declare global {
  // Express's documented way to type what middleware adds to a request (no import of express).
  namespace Express {
    interface Request {
      /** Set by @portcullis/verify's verifyMiddleware once the bearer token is verified. */
      identity?: Identity
    }
  }
}

/** What the middleware reads of an Express request (structural: no dependency on express). */
export interface ExpressRequestLike extends RequestLike {
  /** Express keeps the full target here when a router is mounted on a path. */
  readonly originalUrl?: string
  identity?: Identity
}

/** What the middleware writes to an Express response (node's ServerResponse methods). */
export interface ExpressResponseLike {
  readonly headersSent: boolean
  writeHead(status: number, headers: Record<string, string>): unknown
  end(body: string): unknown
}

export type NextFunction = (err?: unknown) => void

/** Options of {@link verifyMiddleware}. */
export interface ExpressVerifyOptions {
  /** Scopes every request must hold (all of them); 403 insufficient_scope otherwise. */
  readonly scopes?: readonly string[]
  /** Realm of the challenges; default the verifier's. */
  readonly realm?: string
}

function answer(res: ExpressResponseLike, err: VerifyError, realm: string): void {
  const p = problemResponse(err, realm)
  res.writeHead(p.status, p.headers)
  res.end(p.body)
}

/**
 * Express middleware (tested with Express 5): verifies the bearer token, sets `req.identity` and calls `next()`;
 * otherwise answers 400/401/403/503 itself with `application/problem+json` and the RFC 6750
 * `WWW-Authenticate` challenge, so the route handler never runs. Errors that are not VerifyError
 * go to `next(err)`.
 *
 * @example
 * ```ts
 * import express from 'express'
 * import { createVerifier } from '@portcullis/verify'
 * import { verifyMiddleware } from '@portcullis/verify/express'
 *
 * const verifier = createVerifier({ issuer, audience: 'api://orders', jwksUri })
 * const app = express()
 * app.get('/orders', verifyMiddleware(verifier, { scopes: ['orders:read'] }), (req, res) => {
 *   res.json({ subject: req.identity!.subject })
 * })
 * ```
 */
export function verifyMiddleware(
  verifier: Verifier,
  options: ExpressVerifyOptions = {},
): (req: ExpressRequestLike, res: ExpressResponseLike, next: NextFunction) => void {
  const scopes = scopesOption(options.scopes)
  const realm = options.realm ?? verifier.realm
  return function portcullisVerify(req, res, next) {
    const target = { headers: req.headers, rawHeaders: req.rawHeaders, url: req.originalUrl ?? req.url }
    authenticateRequest(verifier, target, scopes).then(
      (identity) => {
        req.identity = identity
        next()
      },
      (err: unknown) => {
        if (isVerifyError(err) && !res.headersSent) answer(res, err, realm)
        else next(err)
      },
    )
  }
}

/**
 * Express middleware for a route below a {@link verifyMiddleware}: 403 insufficient_scope unless
 * `req.identity` holds every one of `scopes` (401 when the request has no identity at all, which
 * means verifyMiddleware is missing in front of it).
 *
 * @example
 * ```ts
 * app.use(verifyMiddleware(verifier))
 * app.delete('/orders/:id', requireScopesMiddleware(['orders:write']), deleteOrder)
 * ```
 */
export function requireScopesMiddleware(
  scopes: readonly string[],
  options: { readonly realm?: string } = {},
): (req: ExpressRequestLike, res: ExpressResponseLike, next: NextFunction) => void {
  const required = scopesOption(scopes)!
  const realm = options.realm ?? DEFAULT_REALM
  return function portcullisRequireScopes(req, res, next) {
    if (req.identity === undefined) return answer(res, new VerifyError('ERR_AUTHN_MISSING', { reason: 'no_identity' }), realm)
    try {
      requireScopes(req.identity, ...required)
    } catch (err) {
      return answer(res, err as VerifyError, realm)
    }
    next()
  }
}
