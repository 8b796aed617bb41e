import { isVerifyError } from '@portcullis/verify/rules'
import { GatewayError } from '../../errors/gateway-error.js'

/**
 * Failure helpers. `reason` goes to the security event only; clients see the code and the
 * RFC 6750 challenge, never which check failed (no oracle for forgers).
 */
export function invalidToken(reason: string): GatewayError {
  return new GatewayError('ERR_AUTHN_INVALID_TOKEN', { reason })
}

export function malformed(reason: string, detail: string): GatewayError {
  return new GatewayError('ERR_AUTHN_MALFORMED', { reason, detail })
}

/**
 * The token rules are @portcullis/verify's (see claims.ts); its errors carry the gateway's codes
 * and reason names, so they translate one to one. Anything else is returned as it is.
 */
export function asGatewayError(err: unknown): unknown {
  return isVerifyError(err) ? new GatewayError(err.code, { reason: err.reason, detail: err.detail }) : err
}
