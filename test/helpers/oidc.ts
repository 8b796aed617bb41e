import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'

/**
 * The part of oidc-provider's API used here. The package ships no type declarations; rather than
 * add a dependency for them, the module is imported by a non-literal name and typed locally.
 */
interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => {
    callback(): (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void
    on(event: string, listener: (...args: unknown[]) => void): unknown
  }
  errors: { InvalidTarget: new () => Error }
}
const OIDC_PROVIDER: string = 'oidc-provider'
/** Where getToken hands the provider the client certificate (see certificateBound). */
const CERTIFICATE_HEADER = 'x-test-client-certificate'

export interface OidcClient {
  readonly clientId: string
  readonly clientSecret: string
  /** Space-delimited scopes the client may request. */
  readonly scope: string
}

export interface OidcProviderOptions {
  /** client_credentials clients (default: one client "svc" allowed every scope). */
  readonly clients?: readonly OidcClient[]
  /** Scopes the provider and the resource server know (default ["read", "write"]). */
  readonly scopes?: readonly string[]
  /** The resource indicator, used as the access token `aud` (default "api://test"). */
  readonly audience?: string
  /** Access token lifetime in seconds (default 300). */
  readonly accessTokenTTL?: number
  /**
   * Certificate-bound access tokens (RFC 8705): every client's tokens carry cnf.x5t#S256 of the
   * certificate given to getToken. The provider sits behind no TLS terminator here, so the test
   * hands it the client certificate in a header (what a terminator in front would do).
   */
  readonly certificateBound?: boolean
}

export interface StartedOidcProvider {
  /** Issuer URL; the discovery document is at discoveryUrl. */
  readonly issuer: string
  readonly discoveryUrl: string
  readonly tokenEndpoint: string
  readonly audience: string
  readonly clients: readonly OidcClient[]
  /**
   * Gets an access token with the client_credentials grant, over HTTP like any client would.
   * Defaults: the first client, the client's scopes, the configured audience as resource.
   */
  getToken(options?: { clientId?: string; scope?: string; resource?: string; certificate?: string }): Promise<string>
  close(): Promise<void>
}

/**
 * A real OpenID Provider (panva/oidc-provider) in the test process, issuing RFC 9068 JWT access
 * tokens (typ "at+jwt") through the client_credentials grant and resource indicators (RFC 8707).
 * Its signing key is an RSA key generated at run time; nothing is read from disk.
 *
 * @example
 * const op = await startOidcProvider({ scopes: ['orders:read'], audience: 'api://orders' })
 * const token = await op.getToken({ scope: 'orders:read' })
 */
export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<StartedOidcProvider> {
  const scopes = options.scopes ?? ['read', 'write']
  const audience = options.audience ?? 'api://test'
  const clients = options.clients ?? [{ clientId: 'svc', clientSecret: 'svc-secret-0123456789', scope: scopes.join(' ') }]
  const ttl = options.accessTokenTTL ?? 300

  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const { default: Provider, errors } = (await import(OIDC_PROVIDER)) as OidcProviderModule
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'op-rs256', alg: 'RS256', use: 'sig' }

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: c.scope,
      token_endpoint_auth_method: 'client_secret_basic',
      ...(options.certificateBound ? { tls_client_certificate_bound_access_tokens: true } : {}),
    })),
    jwks: { keys: [signingKey] },
    scopes: [...scopes],
    cookies: { keys: ['test-cookie-key-not-secret'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      ...(options.certificateBound
        ? {
            mTLS: {
              enabled: true,
              certificateBoundAccessTokens: true,
              getCertificate: (ctx: { get(name: string): string }) => {
                const pem = ctx.get(CERTIFICATE_HEADER)
                return pem ? decodeURIComponent(pem) : undefined
              },
            },
          }
        : {}),
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== audience) throw new errors.InvalidTarget()
          return { audience, scope: scopes.join(' '), accessTokenFormat: 'jwt', accessTokenTTL: ttl, jwt: { sign: { alg: 'RS256' } } }
        },
      },
    },
  })
  // Keep test output readable: the provider reports client errors (our negative cases) loudly.
  provider.on('server_error', () => {})
  server.on('request', provider.callback())

  const tokenEndpoint = `${issuer}/token`
  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    tokenEndpoint,
    audience,
    clients,
    async getToken(opts = {}) {
      const client = clients.find((c) => c.clientId === (opts.clientId ?? clients[0].clientId))
      if (!client) throw new Error(`unknown client ${opts.clientId}`)
      const body = new URLSearchParams({ grant_type: 'client_credentials', scope: opts.scope ?? client.scope, resource: opts.resource ?? audience })
      const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64'),
          'content-type': 'application/x-www-form-urlencoded',
          ...(opts.certificate ? { [CERTIFICATE_HEADER]: encodeURIComponent(opts.certificate) } : {}),
        },
        body,
      })
      const json = (await res.json()) as { access_token?: string; error?: string; error_description?: string }
      if (res.status !== 200 || !json.access_token) throw new Error(`token request failed: ${res.status} ${json.error} ${json.error_description ?? ''}`)
      return json.access_token
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
