import { PATTERNS } from '../config/patterns.js'
import { Type, type Static } from '@sinclair/typebox'

/**
 * Config of internal tokens: the short-lived JWTs the gateway mints for upstream services, signed
 * with its own key (docs/internal-tokens.md). schema.ts adds `internalTokens` at the top level,
 * `upstreamToken` to each route and `audience` to each upstream. Cross-field checks are in
 * ./config-checks.ts.
 */
const closed = { additionalProperties: false } as const

export const DEFAULT_JWKS_PATH = '/.well-known/portcullis/jwks.json'
/** The longest lifetime of an internal token; also what @portcullis/verify accepts by default. */
export const MAX_TTL_SEC = 60

export const SigningAlgorithm = Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256')], {
  default: 'EdDSA',
  description: 'Algorithm of the current signing key: EdDSA (Ed25519) or ES256 (P-256). The current key of the key set must have it.',
})
export type SigningAlgorithm = Static<typeof SigningAlgorithm>

export const InternalTokensSchema = Type.Object(
  {
    issuer: Type.String({
      format: 'uri',
      description: "The gateway's own issuer identifier: the iss of every internal token. Services verify exactly this value.",
    }),
    signingKeys: Type.String({
      minLength: 1,
      description:
        'The signing key set (JSON written by "portcullis keys generate"). Give it as ${file:PATH} (relative to this config file, read again on every reload) or ${env:NAME}, never inline.',
    }),
    algorithm: SigningAlgorithm,
    ttlSec: Type.Integer({ minimum: 1, maximum: MAX_TTL_SEC, default: 30, description: 'Lifetime of a minted token; never past the caller token’s exp.' }),
    jwksPath: Type.String({
      pattern: PATTERNS.path.pattern,
      default: DEFAULT_JWKS_PATH,
      description: 'Path on the public listeners where the gateway serves its public keys (JWKS) for services.',
    }),
    jwksMaxAgeSec: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 60,
      description: 'Cache-Control max-age of the JWKS; never longer than the time until the next scheduled key retirement.',
    }),
    cacheMaxEntries: Type.Integer({
      minimum: 0,
      default: 10_000,
      description: 'Minted tokens remembered per upstream audience, by caller token, until shortly before they expire. 0 signs one per request.',
    }),
    requestIdClaim: Type.Boolean({
      default: false,
      description: 'Also sign the request id into each token (claim req_id). Such tokens are unique per request, so they are never cached.',
    }),
  },
  { ...closed, description: 'Internal tokens minted for upstream services (routes with upstreamToken: internal).' },
)
export type InternalTokensConfig = Static<typeof InternalTokensSchema>

/** Route field. Optional in the type, so that configs built in code need not state it. */
export const UpstreamTokenField = Type.Optional(
  Type.Union([Type.Literal('forward'), Type.Literal('internal')], {
    default: 'forward',
    description:
      '"forward": the caller’s token goes to the upstream (per identity.forwardAuthorization). "internal": it is replaced by a token the gateway mints for the upstream’s audience; needs auth: required (or certificate) and internalTokens.',
  }),
)

/** Upstream field. */
export const UpstreamAudienceField = Type.Optional(
  Type.String({ minLength: 1, description: 'aud of the internal tokens minted for this upstream. Required when a route with upstreamToken: internal uses it.' }),
)
