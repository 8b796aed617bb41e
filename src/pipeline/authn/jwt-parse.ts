import { parseCompact as parse, type ParsedJwt } from '@portcullis/verify/rules'
import { asGatewayError } from './reject.js'

export type { ParsedJwt }

/** Splits and decodes a compact JWS with @portcullis/verify's rules, throwing GatewayError. */
export function parseCompact(token: string): ParsedJwt {
  try {
    return parse(token)
  } catch (err) {
    throw asGatewayError(err)
  }
}
