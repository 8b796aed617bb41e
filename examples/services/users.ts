// Example service "users", behind the Portcullis gateway: Fastify + @portcullis/verify.
//
// Same rule as "orders": every request carries an internal token minted by the gateway for the
// audience "users", or it is refused. An internal token minted for "orders" does not open "users".
import Fastify from 'fastify'
import { gatewayTokenVerifier, type Identity } from '@portcullis/verify'
import { fastifyVerify } from '@portcullis/verify/fastify'
import { verifiedIdentity, type RunningService, type ServiceOptions } from './orders.js'

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null
  }
}

export async function startUsersService(options: ServiceOptions): Promise<RunningService> {
  const verifier = gatewayTokenVerifier({ gatewayIssuer: options.gatewayIssuer, audience: 'users', jwksUri: options.jwksUri })
  const app = Fastify()

  app.register(async (api) => {
    // Every route of this context is verified; each route states the scope it needs.
    await api.register(fastifyVerify, { verifier })
    api.get('/users/me', { config: { scopes: ['users:read'] } }, async (request) => {
      const identity = request.identity!
      return { service: 'users', user: { id: identity.subject, name: `user ${identity.subject}` }, identity: verifiedIdentity('users', identity) }
    })
  })

  const url = await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  return { url, server: app.server, close: () => app.close() }
}
