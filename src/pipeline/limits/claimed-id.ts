/**
 * The account a failing credential claims to be: the `client_id` (RFC 9068 §2.2), else `azp`,
 * else `sub` of a JWT, read WITHOUT verification. It is attacker-controlled and used for one
 * thing only: counting failures per targeted account, so that an attacker spreading guesses over
 * many addresses against one client is still noticed. It never grants anything, never reaches the
 * upstream, and is digested in store keys (keys.ts) when long or odd.
 *
 * Bounded work: tokens over MAX_TOKEN_CHARS are not decoded (authn refuses them anyway), and a
 * payload that is not a JSON object yields nothing.
 */
const MAX_TOKEN_CHARS = 8192
const MAX_ID_CHARS = 256

/**
 * The claimed account of an Authorization header value, or undefined. Decodes the token each
 * time; the gateway instead asks authn (accountFromClaims over its per-request decode), and this
 * is the fallback for a tracker used without authn. Nothing is memoized across requests: a table
 * keyed by raw header values would keep bearer tokens in memory long after their requests.
 */
export function claimedAccount(authorization: string | string[] | undefined): string | undefined {
  if (typeof authorization !== 'string' || authorization.length > MAX_TOKEN_CHARS + 7) return undefined
  // RFC 6750 §2.1: the scheme is case-insensitive.
  if (authorization.length < 8 || authorization.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
  const token = authorization.slice(7).trim()
  const first = token.indexOf('.')
  const second = first === -1 ? -1 : token.indexOf('.', first + 1)
  if (second === -1) return undefined
  let payload: unknown
  try {
    payload = JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return undefined
  return accountFromClaims(payload as Record<string, unknown>)
}

/** client_id, else azp, else sub: the first that is a non-empty string, capped in length. */
export function accountFromClaims(claims: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (claims === undefined) return undefined
  for (const name of ['client_id', 'azp', 'sub']) {
    const v = claims[name]
    if (typeof v === 'string' && v.length > 0) return v.slice(0, MAX_ID_CHARS)
  }
  return undefined
}

/** The account of a verified identity, named the same way as claimedAccount names a token's. */
export function verifiedAccount(identity: { readonly clientId: string | undefined; readonly claims: Readonly<Record<string, unknown>>; readonly subject: string | undefined } | undefined): string | undefined {
  if (!identity) return undefined
  const azp = identity.claims.azp
  const id = identity.clientId ?? (typeof azp === 'string' && azp ? azp : undefined) ?? identity.subject
  return id ? id.slice(0, MAX_ID_CHARS) : undefined
}
