import { createVerifier } from './create-verifier.js'
import type { Verifier, VerifierOptions } from './types.js'

/**
 * JOSE `typ` of the internal tokens the Portcullis gateway mints for upstream services. It ends in
 * "at+jwt" because it is an access token (RFC 9068), and differs from plain "at+jwt" so that a
 * service expecting the gateway's token cannot be handed an IdP's token, and the reverse
 * (RFC 8725 §3.11 explicit typing).
 */
export const GATEWAY_TOKEN_TYP = 'portcullis-at+jwt'

/** Options of {@link gatewayTokenVerifier}. */
export interface GatewayTokenVerifierOptions extends Omit<VerifierOptions, 'issuer' | 'jwksUri' | 'discoveryUrl' | 'jwks'> {
  /** The gateway's issuer identifier (its `iss`), exactly. */
  readonly gatewayIssuer: string
  /** This service's audience: the gateway mints one token per upstream audience. */
  readonly audience: string | readonly string[]
  /** The gateway's JWKS URL: its `internalTokens.jwksPath` (default /.well-known/portcullis/jwks.json). */
  readonly jwksUri: string | URL
}

/**
 * A verifier for the gateway's internal tokens, with the defaults those tokens call for:
 * algorithms EdDSA and ES256 (what the gateway signs with), `typ` {@link GATEWAY_TOKEN_TYP}
 * required, a lifetime of at most 60 s and a clock tolerance of 5 s (gateway and service share an
 * infrastructure; internal tokens are short-lived on purpose). Any option can still be overridden.
 *
 * A request that bypassed the gateway is refused: with no token, with the caller's own IdP token
 * (other `iss`, other `typ`), with an internal token minted for another service (other `aud`), or
 * with an expired one.
 *
 * @example
 * ```ts
 * import { gatewayTokenVerifier } from '@portcullis/verify'
 *
 * const verifier = gatewayTokenVerifier({
 *   gatewayIssuer: 'https://gateway.internal',
 *   audience: 'orders',
 *   jwksUri: 'https://gateway.internal/.well-known/portcullis/jwks.json',
 * })
 * const identity = await verifier.verify(req.headers.authorization)
 * identity.act?.sub // the caller the gateway acts for, when it does (RFC 8693)
 * ```
 */
export function gatewayTokenVerifier(options: GatewayTokenVerifierOptions): Verifier {
  const { gatewayIssuer, ...rest } = options
  const merged: Record<string, unknown> = {
    algorithms: ['EdDSA', 'ES256'],
    requiredTyp: GATEWAY_TOKEN_TYP,
    maxTokenLifetimeSec: 60,
    clockToleranceSec: 5,
  }
  // An option given as undefined keeps the preset's value rather than falling back further.
  for (const [name, value] of Object.entries(rest)) if (value !== undefined) merged[name] = value
  return createVerifier({ ...(merged as Omit<VerifierOptions, 'issuer'>), issuer: gatewayIssuer })
}
