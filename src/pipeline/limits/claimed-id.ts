import { parseCompact } from '../authn/jwt-parse.js'
import { bearerHint } from '../authn/presented.js'

/**
 * The account a failing credential claims to be: the `client_id` (RFC 9068 §2.2), else `azp`,
 * else `sub` of a JWT, qualified by its `iss` ("<iss> <id>": one issuer's client is not another's),
 * read WITHOUT verification. It is attacker-controlled and used for one thing only: counting
 * failures per targeted account, so that an attacker spreading guesses over many addresses
 * against one client is still noticed. It never grants or refuses anything, never reaches the
 * upstream, and is digested in store keys (keys.ts) when long or odd.
 *
 * Bounded work: tokens over authn's MAX_TOKEN_BYTES are not decoded (authn refuses them anyway),
 * and a token that is not a compact JWS with a JSON object payload yields nothing.
 */
const MAX_ID_CHARS = 256

/**
 * The claimed account of an Authorization header value, or undefined. Decodes the token each
 * time (with authn's bearer and JWS parsing); the gateway instead asks authn, which decodes a
 * token once per request (BruteForceDeps.claimedAccount). Nothing is memoized across requests: a
 * table keyed by raw header values would keep bearer tokens in memory long after their requests.
 */
export function claimedAccount(authorization: string | string[] | undefined): string | undefined {
  const token = bearerHint(authorization)
  if (token === undefined) return undefined
  try {
    return accountFromClaims(parseCompact(token.trim()).payload)
  } catch {
    return undefined
  }
}

/** "<iss> <id>" with the id capped in length. */
const accountName = (iss: string, id: string) => `${iss.slice(0, MAX_ID_CHARS)} ${id.slice(0, MAX_ID_CHARS)}`

/** `iss` with client_id, else azp, else sub (the first non-empty string); nothing without an `iss`. */
export function accountFromClaims(claims: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (claims === undefined || typeof claims.iss !== 'string') return undefined
  for (const name of ['client_id', 'azp', 'sub']) {
    const v = claims[name]
    if (typeof v === 'string' && v.length > 0) return accountName(claims.iss, v)
  }
  return undefined
}

/** The account of a verified identity, named the same way as claimedAccount names a token's. */
export function verifiedAccount(
  identity: { readonly issuer: string; readonly clientId: string | undefined; readonly subject: string | undefined } | undefined,
): string | undefined {
  // authn's clientId is already client_id, else azp (claims.ts buildIdentity).
  const id = identity?.clientId || identity?.subject
  return id ? accountName(identity!.issuer, id) : undefined
}
