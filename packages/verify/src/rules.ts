/**
 * `@portcullis/verify/rules`: the token rules themselves, without keys, signatures or caching.
 * The Portcullis gateway judges tokens with these (it checks signatures its own way, with
 * node:crypto), so a token is refused for the same reason at the edge and inside a service.
 * Services need only the package's main entry. Every function throws {@link VerifyError}.
 */
export { parseCompact } from './lib/jwt-parse.js'
export type { Header, ParsedJwt, Payload } from './lib/jwt-parse.js'
export { checkHeaderPolicy, checkHeaderShape } from './lib/check-header.js'
export { checkAccessTokenClaims, isActor, scopesOf } from './lib/check-claims.js'
export { bindingRefusal, boundCertificate, certificateThumbprint } from './lib/confirmation.js'
export type { BindingRefusal } from './lib/confirmation.js'
export { normalizeTyp } from './lib/policy.js'
export type { TokenPolicy } from './lib/policy.js'
export { countAuthorizationHeaders, hasQueryToken, parseAuthorization } from './lib/bearer.js'
export type { AuthorizationValue } from './lib/bearer.js'
export { isVerifyError, VerifyError } from './verify-error.js'
