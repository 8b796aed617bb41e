import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'
import Provider, { errors as oidcErrors } from 'oidc-provider'

/**
 * A local OpenID Connect provider for the quick start, built on oidc-provider (a certified
 * implementation nobody here wrote). It issues short-lived RS256 JWT access tokens (RFC 9068,
 * typ at+jwt) to confidential clients through the client_credentials grant. Its signing key is
 * generated at start and lives only in memory. Development only: the client secrets are public.
 */
export interface DevClient {
  readonly clientId: string
  readonly clientSecret: string
  readonly scope: string
}

export interface DevIdp {
  readonly issuer: string
  readonly server: Server
  close(): Promise<void>
}

export async function startDevIdp(options: {
  host?: string
  port?: number
  audience: string
  scopes: readonly string[]
  clients: readonly DevClient[]
  accessTokenTtlSec?: number
}): Promise<DevIdp> {
  const host = options.host ?? '127.0.0.1'
  const accessTokenTtlSec = options.accessTokenTtlSec ?? 300
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => (server.off('error', reject), resolve()))
  })
  const issuer = `http://${host}:${(server.address() as AddressInfo).port}`
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = { ...(await exportJWK(privateKey)), kid: 'dev-rs256', alg: 'RS256', use: 'sig' }
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: c.scope,
    })),
    scopes: [...options.scopes],
    jwks: { keys: [jwk] },
    ttl: { ClientCredentials: accessTokenTtlSec },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A token request without a `resource` parameter is for the demo API.
        defaultResource: () => options.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== options.audience) throw new oidcErrors.InvalidTarget()
          return {
            scope: options.scopes.join(' '),
            audience: options.audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTokenTtlSec,
            jwt: { sign: { alg: 'RS256' } },
          }
        },
      },
    },
  } as ConstructorParameters<typeof Provider>[1])
  server.on('request', provider.callback())
  return {
    issuer,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
