import { countAuthorizationHeaders, hasQueryToken, parseAuthorization } from '@portcullis/verify/rules'
import { GatewayError } from '../../errors/gateway-error.js'
import { malformed } from './reject.js'

// The Authorization syntax (RFC 6750 §2.1), the duplicate-field count and the query-token rule are
// @portcullis/verify's, so a service behind the gateway reads credentials the same way.

/**
 * Extracts the bearer token of a request, or throws:
 * - ERR_AUTHN_MALFORMED when the token is in the query (RFC 6750 §2.3 is a SHOULD NOT for clients;
 *   we refuse it because URLs end up in logs and Referer headers, RFC 6750 §5.3), when there are two
 *   Authorization fields (which one the upstream reads is undefined), or when the field is not
 *   valid RFC 6750 §2.1 syntax;
 * - ERR_AUTHN_MISSING when there are no bearer credentials. Form-encoded body tokens (§2.2) are
 *   never read, so such a request counts as having no credentials.
 */
export function extractBearer(rawHeaders: readonly string[], authorization: string | undefined, query: string): string {
  if (hasQueryToken(query)) {
    throw malformed('query_token', 'Send the access token in the Authorization header, not in the URL.')
  }
  const count = authorization === undefined ? 0 : countAuthorizationHeaders(rawHeaders)
  if (count === 0) throw new GatewayError('ERR_AUTHN_MISSING', { reason: 'no_credentials' })
  if (count > 1) throw malformed('multiple_authorization', 'Send exactly one Authorization header.')
  const parsed = parseAuthorization(authorization!)
  if (parsed.kind === 'bearer') return parsed.token
  if (parsed.kind === 'other-scheme') {
    // Another scheme is not a broken bearer credential: the client simply has not presented one.
    throw new GatewayError('ERR_AUTHN_MISSING', { reason: 'unsupported_scheme' })
  }
  throw malformed('bad_authorization_syntax', 'Use "Authorization: Bearer <token>".')
}
