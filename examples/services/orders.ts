// Example service "orders", behind the Portcullis gateway: plain node:http + @portcullis/verify.
//
// It trusts nobody on the network, the gateway included: every request must carry an internal
// token the gateway minted for the audience "orders", signed with a key from the gateway's JWKS,
// still valid, and with the scope the operation needs. A request that went around the gateway
// (no token, the caller's own IdP token, a token minted for "users", an expired one) gets 401.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gatewayTokenVerifier, requireScopes, type Identity } from '@portcullis/verify'
import { withVerifier } from '@portcullis/verify/node-http'

export interface ServiceOptions {
  /** internalTokens.issuer of the gateway. */
  readonly gatewayIssuer: string
  /** The gateway's JWKS: its URL + internalTokens.jwksPath. */
  readonly jwksUri: string
  readonly host?: string
  readonly port?: number
}

export interface RunningService {
  readonly url: string
  readonly server: Server
  close(): Promise<void>
}

/** What the demo shows of the identity it verified itself (see README "Quick start"). */
export function verifiedIdentity(service: string, identity: Identity): Record<string, unknown> {
  return {
    verifiedBy: `${service}, with @portcullis/verify`,
    subject: identity.subject,
    clientId: identity.clientId,
    scopes: [...identity.scopes].sort(),
    tokenIssuer: identity.issuer, // the gateway
    actor: identity.act?.sub, // RFC 8693: the gateway acts on behalf of the subject
    callerIssuer: identity.claims.orig_iss, // who issued the caller's own token
  }
}

/** The headers the gateway set, for the demo: the request id, the trace, the identity headers. */
function gatewayHeaders(req: IncomingMessage): Record<string, string | string[] | undefined> {
  const seen: Record<string, string | string[] | undefined> = {}
  for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-') || k === 'traceparent') seen[k] = v
  return seen
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

export async function startOrdersService(options: ServiceOptions): Promise<RunningService> {
  const verifier = gatewayTokenVerifier({ gatewayIssuer: options.gatewayIssuer, audience: 'orders', jwksUri: options.jwksUri })

  // Runs authenticated; a VerifyError (requireScopes' too) is answered with problem+json, anything else with a 500.
  const orders = withVerifier(verifier, (req, res, identity) => {
    // The gateway checked the route's scopes already; the service checks its own anyway,
    // so a misconfigured route cannot open it up.
    const write = req.method !== 'GET' && req.method !== 'HEAD'
    requireScopes(identity, write ? 'orders:write' : 'orders:read')
    const id = /^\/orders\/([^/?]+)/.exec(req.url ?? '')?.[1]
    sendJson(res, write ? 201 : 200, {
      service: 'orders',
      method: req.method,
      path: req.url,
      order: id ? { id, item: 'portcullis', quantity: 1 } : undefined,
      identity: verifiedIdentity('orders', identity),
      headers: gatewayHeaders(req),
    })
  })

  const server = createServer((req, res) => {
    // The one public endpoint; the gateway's public /status route lands here.
    if (req.url === '/status') return sendJson(res, 200, { service: 'orders', status: 'ok' })
    void orders(req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => (server.off('error', reject), resolve()))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  }
}
