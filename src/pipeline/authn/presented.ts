import { hash } from 'node:crypto'
import { parseCompact, type ParsedJwt } from './jwt-parse.js'
import { MAX_TOKEN_BYTES } from './limits.js'

/**
 * The bearer token a request presented, as far as it has been looked at. Kept on the request
 * context (never in a process-wide table), so the raw token lives as long as its request and no
 * longer. The limits stage before authn may ask who a token claims to be (brute-force counting per
 * account); authn then reuses the same digest and decoded JWS instead of doing the work twice.
 */
export interface PresentedToken {
  readonly token: string
  /** SHA-256 of the token, base64url: the verified-token cache key. */
  readonly digest: string
  /** The decoded JWS once decoded, null when it is not one; undefined when not tried yet. */
  jwt: ParsedJwt | null | undefined
}

/** A request as far as the token hints need it (a RequestContext is one). */
export interface TokenHolder {
  readonly req: { readonly headers: { readonly authorization?: string | string[] } }
  presentedToken?: PresentedToken
}

/** How events and logs name a presented token: a prefix of its digest, never the token. */
export function loggedDigest(p: PresentedToken): string {
  return p.digest.slice(0, 16)
}

/** The memo for `token` on this request, created (hashed) on first use. */
export function presented(ctx: TokenHolder, token: string): PresentedToken {
  const known = ctx.presentedToken
  if (known !== undefined && known.token === token) return known
  const fresh: PresentedToken = { token, digest: hash('sha256', token, 'base64url'), jwt: undefined }
  ctx.presentedToken = fresh
  return fresh
}

/** Decodes (does not verify) the token once per request; null when it is not a compact JWS. */
export function decodedJwt(p: PresentedToken): ParsedJwt | null {
  if (p.jwt !== undefined) return p.jwt
  try {
    p.jwt = p.token.length > MAX_TOKEN_BYTES ? null : parseCompact(p.token)
  } catch {
    p.jwt = null
  }
  return p.jwt
}

/**
 * The token of an Authorization value of the form "Bearer <token>" (scheme in any case, one or
 * more spaces, as RFC 6750's `1*SP`), or undefined. Lenient on purpose: it finds a token to look
 * up (is it cached, whom does it claim to be) without a pass over its characters. On its own it
 * decides nothing: authn accepts what it finds only when the token is in its verified-token
 * cache, which holds only tokens that passed the strict parse; everything else is parsed strictly.
 */
export function bearerHint(authorization: string | string[] | undefined): string | undefined {
  if (typeof authorization !== 'string' || authorization.length < 8) return undefined
  if (authorization.charCodeAt(6) !== 32 || authorization.slice(0, 6).toLowerCase() !== 'bearer') return undefined
  let start = 7
  while (authorization.charCodeAt(start) === 32) start++
  if (start === authorization.length || authorization.length - start > MAX_TOKEN_BYTES) return undefined
  return authorization.slice(start)
}
