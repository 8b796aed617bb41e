import { VerifyError } from '../verify-error.js'

/**
 * Failure helpers. `reason` names the failed check for logs only: the response shows the code and
 * the RFC 6750 challenge, never which check failed (no oracle for forgers). The reason names are
 * the gateway's, so the shared attack fixtures expect the same reason from both.
 */
export function invalidToken(reason: string): VerifyError {
  return new VerifyError('ERR_AUTHN_INVALID_TOKEN', { reason })
}

export function malformed(reason: string, detail: string): VerifyError {
  return new VerifyError('ERR_AUTHN_MALFORMED', { reason, detail })
}

/** The same error, answered under another realm (errors are immutable, so this copies). */
export function withRealm(err: VerifyError, realm: string): VerifyError {
  if (err.realm === realm) return err
  const copy = new VerifyError(err.code, {
    reason: err.reason,
    detail: err.detail,
    scope: err.scope,
    retryAfterSec: err.retryAfterSec,
    realm,
    cause: err.cause,
  })
  copy.stack = err.stack
  return copy
}
